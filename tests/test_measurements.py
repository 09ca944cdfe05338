from ftcourse.classroom import measurements as M


def test_round_trip_and_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv("FTCOURSE_PROGRESS", str(tmp_path / "progress.json"))
    fallback = {"tokens_saved": 500.0, "price_per_m": 0.5}
    values, source = M.load_measurements("04", fallback)
    assert values == fallback and "not been run" in source
    M.save_measurements("04", tokens_saved=559, price_per_m=0.5)
    values, source = M.load_measurements("04", fallback)
    assert values == {"tokens_saved": 559.0, "price_per_m": 0.5} and "measured" in source
    assert not list(tmp_path.glob("*.tmp"))


def test_corrupt_file_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("FTCOURSE_PROGRESS", str(tmp_path / "progress.json"))
    M.measurements_path().write_text("{not json")
    values, _ = M.load_measurements("04", {"x": 1.0})
    assert values == {"x": 1.0}
    M.save_measurements("04", x=2)
    assert M.load_measurements("04", {"x": 1.0})[0] == {"x": 2.0}
