"""API drift: every keyword argument the course passes to transformers, peft or trl exists.

The course's code (package, notebooks, benchmarks) is parsed, not run. Each call to a known library
entry point is collected with its keyword names, and each name is looked up in the installed
library: in the signature, in the config dataclass, or (for entry points that take ``**kwargs`` and
pop them inside) in the function's source. A version bump that renames or drops an argument fails
here, loudly, instead of in a learner's notebook.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _source_mentions(fn, kw: str) -> bool:
    """``**kwargs`` entry points: the argument is popped or read by name somewhere in the source."""
    try:
        src = inspect.getsource(fn)
    except (OSError, TypeError):
        return False
    return re.search(rf"""["']{re.escape(kw)}["']|\b{re.escape(kw)}\s*=""", src) is not None


@cache
def _validators():
    import peft
    import transformers
    from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase
    from transformers.generation.utils import GenerationMixin

    def params(fn):
        return set(inspect.signature(fn).parameters)

    def fields(cls):
        return {f.name for f in dataclasses.fields(cls)}

    gen_attrs = set(vars(GenerationConfig()))

    def from_pretrained_ok(kw):
        return (kw in params(PreTrainedModel.from_pretrained) or kw in params(peft.PeftModel.from_pretrained) or _source_mentions(PreTrainedModel.from_pretrained, kw)
                or kw in params(transformers.AutoTokenizer.from_pretrained)
                or _source_mentions(transformers.AutoTokenizer.from_pretrained, kw)
                or _source_mentions(transformers.PreTrainedTokenizerBase.from_pretrained, kw)
                or _source_mentions(transformers.modeling_utils, kw))

    checks = {
        "from_pretrained": from_pretrained_ok,
        "from_config": lambda kw: kw in params(transformers.AutoModelForCausalLM.from_config)
        or _source_mentions(transformers.models.auto.auto_factory._BaseAutoModelClass.from_config, kw)
        or kw in params(PreTrainedModel._from_config) or _source_mentions(PreTrainedModel._from_config, kw),
        "generate": lambda kw: kw in params(GenerationMixin.generate) or kw in gen_attrs
        or kw in {"input_ids", "attention_mask"},
        "apply_chat_template": lambda kw: kw in params(PreTrainedTokenizerBase.apply_chat_template),
        "save_pretrained": lambda kw: kw in params(PreTrainedModel.save_pretrained)
        or kw in params(PreTrainedTokenizerBase.save_pretrained) or kw in params(peft.PeftModel.save_pretrained),
        "LoraConfig": lambda kw: kw in fields(peft.LoraConfig),
        "get_peft_model": lambda kw: kw in params(peft.get_peft_model),
        "merge_and_unload": lambda kw: kw in params(peft.PeftModel.merge_and_unload),
        "LlamaConfig": lambda kw: kw in params(transformers.LlamaConfig.__init__)
        or kw in params(transformers.PretrainedConfig.__init__) or _source_mentions(transformers.PretrainedConfig, kw),
        "TrainingArguments": lambda kw: kw in fields(transformers.TrainingArguments),
        "Trainer": lambda kw: kw in params(transformers.Trainer.__init__),
    }
    try:
        import trl

        checks["SFTConfig"] = lambda kw: kw in fields(trl.SFTConfig)
        checks["SFTTrainer"] = lambda kw: kw in params(trl.SFTTrainer.__init__)
    except ImportError:  # trl is a dev dependency, for the benchmark only
        pass
    return checks


def _course_sources():
    for path in sorted((ROOT / "ftcourse").rglob("*.py")) + sorted((ROOT / "bench").glob("*.py")):
        yield path, path.read_text()
    for folder in ("lessons", "solutions"):
        for nb_path in sorted((ROOT / folder).glob("*.ipynb")):
            cells = json.loads(nb_path.read_text())["cells"]
            code = "\n".join(
                "".join(c["source"]) for c in cells if c["cell_type"] == "code"
            )
            code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))
            yield nb_path, code


def _is_library_generate(func) -> bool:
    """``model.generate(...)`` is transformers'; ``generate(...)`` / ``chat.generate(...)`` are the course's."""
    if not isinstance(func, ast.Attribute):
        return False
    return not (isinstance(func.value, ast.Name) and func.value.id in {"chat", "ftcourse"})


def collect_calls():
    """(file, line, entry point, keyword) for every keyword passed to a known entry point."""
    names = set(_validators())
    found = []
    for path, code in _course_sources():
        try:
            tree = ast.parse(code)
        except SyntaxError as exc:
            pytest.fail(f"{path.relative_to(ROOT)} does not parse: {exc}")
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name == "generate" and not _is_library_generate(func):
                continue
            if name in names:
                for kw in node.keywords:
                    if kw.arg is not None:  # skip **kwargs splats
                        found.append((str(path.relative_to(ROOT)), node.lineno, name, kw.arg))
    return found


def test_the_scan_finds_the_course_calls():
    seen = {(name, kw) for _, _, name, kw in collect_calls()}
    # the provisioning code alone makes these calls; if the scan misses them, it is broken
    assert ("from_pretrained", "gguf_file") in seen
    assert ("from_pretrained", "dtype") in seen
    assert ("generate", "max_new_tokens") in seen


def test_every_keyword_exists_in_the_installed_libraries():
    checks = _validators()
    unknown = [f"{f}:{line}: {name}({kw}=...)" for f, line, name, kw in collect_calls() if not checks[name](kw)]
    assert not unknown, "keyword arguments the installed libraries no longer accept:\n" + "\n".join(unknown)


@pytest.mark.parametrize("name", ["from_pretrained", "generate", "LoraConfig", "get_peft_model", "apply_chat_template"])
def test_a_made_up_keyword_is_caught(name):
    assert not _validators()[name]("definitely_not_an_argument_xyz")
