"""The public surface: every exported name exists, and nothing private leaks out."""

from __future__ import annotations

import importlib

import ratelimit_llm


def test_every_exported_name_exists_and_is_public() -> None:
    for name in ratelimit_llm.__all__:
        assert hasattr(ratelimit_llm, name), name
        assert not name.startswith("_"), name
    assert sorted(ratelimit_llm.__all__) == sorted(set(ratelimit_llm.__all__))


def test_public_objects_name_their_home_module() -> None:
    for name in ratelimit_llm.__all__:
        value = getattr(ratelimit_llm, name)
        module = getattr(value, "__module__", None)
        if module is not None:
            assert module.startswith("ratelimit_llm"), (name, module)


def test_private_modules_declare_all() -> None:
    for module_name in (
        "_bucket",
        "_classify",
        "_credentials",
        "_decorator",
        "_durations",
        "_estimate",
        "_exceptions",
        "_headers",
        "_limiter",
        "_pool",
        "_sse",
        "_strategy",
        "_telemetry",
        "_transport",
        "_types",
        "_wrap",
    ):
        module = importlib.import_module(f"ratelimit_llm.{module_name}")
        assert isinstance(module.__all__, list | tuple), module_name
        for name in module.__all__:
            assert hasattr(module, name), (module_name, name)
