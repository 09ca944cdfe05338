"""Device choice: cuda, then mps, then cpu; bf16 only on CUDA that supports it."""

import pytest
import torch

from ftcourse.device import choose_device


@pytest.mark.parametrize(
    ("cuda", "mps", "bf16", "device", "dtype"),
    [
        (True, True, True, "cuda", torch.bfloat16),
        (True, False, False, "cuda", torch.float32),
        (False, True, None, "mps", torch.float32),
        (False, False, None, "cpu", torch.float32),
    ],
)
def test_order_and_dtype(cuda, mps, bf16, device, dtype):
    choice = choose_device(cuda_available=cuda, mps_available=mps, bf16_supported=bf16)
    assert (choice.device, choice.dtype) == (device, dtype)
    assert device in str(choice)


def test_prefer_cpu_even_with_a_gpu():
    choice = choose_device("cpu", cuda_available=True, mps_available=True, bf16_supported=True)
    assert choice.device == "cpu" and "COURSE_DEVICE" in choice.reason


def test_prefer_mps_over_cuda():
    assert choose_device("mps", cuda_available=True, mps_available=True).device == "mps"


@pytest.mark.parametrize(("prefer", "message"), [("cuda", "no CUDA"), ("mps", "no Apple MPS"), ("tpu", "must be")])
def test_impossible_preference_is_a_clear_error(prefer, message):
    with pytest.raises(ValueError, match=message):
        choose_device(prefer, cuda_available=False, mps_available=False)


def test_this_machine():
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert choose_device().device == expected
