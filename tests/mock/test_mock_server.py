"""The mock on a real loopback socket (uvicorn in the test's loop) and the CLI."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx2
import openai
import pytest

from ratelimit_llm.mock import PROFILES, FaultPlan, FaultRule, MockLimits, Profile, serve
from ratelimit_llm.mock._cli import build_config, build_parser, main

from ._support import KEY, FakeClock, instant
from .test_mock_limits import HELLO


@pytest.mark.asyncio
async def test_sdk_over_a_real_socket() -> None:
    clock = FakeClock()
    plan = FaultPlan((FaultRule.parse("connection_reset@3"), FaultRule.parse("stream_cut@4")))
    config = instant(limits=MockLimits(rpm=500, tpm=200_000), faults=plan)
    async with serve(config, host="127.0.0.1", port=0, clock=clock, sleep=clock.sleep) as server:
        assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/v1")
        assert server.port > 0
        async with openai.AsyncOpenAI(api_key=KEY, base_url=server.url, max_retries=0) as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=HELLO,
                max_tokens=20,
                extra_headers={"x-stainless-retry-count": "2"},
            )
            assert raw.headers["x-ratelimit-remaining-requests"] == "499"
            assert raw.headers["x-ratelimit-reset-requests"] == "120ms"
            assert raw.parse().usage is not None

            stream = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=HELLO,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]
            assert chunks[-1].usage is not None

            # Request 3: the socket is reset before any header.
            with pytest.raises(openai.APIConnectionError):
                await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)

            # Request 4: headers and some chunks arrive, then the connection drops.
            cut = await client.chat.completions.create(
                model="gpt-4o-mini", messages=HELLO, max_tokens=40, stream=True
            )
            received = 0
            with pytest.raises(openai.APIConnectionError):
                async for _ in cut:
                    received += 1
            assert received >= 1

            # The server keeps serving after both.
            again = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=HELLO
            )
            assert again.headers["x-ratelimit-remaining-requests"] == "495"

        async with httpx2.AsyncClient(base_url=server.origin) as http:
            stats = (await http.get("/mock/stats")).json()
    assert stats["requests"] == 5
    assert stats["faults"] == {"connection_reset": 1, "stream_cut": 1}
    assert stats["retry_counts"] == {"2": 1, "0": 4}


@pytest.mark.asyncio
async def test_serve_refuses_non_loopback_hosts() -> None:
    for host in ("0.0.0.0", "192.168.1.10", "example.com"):
        with pytest.raises(ValueError, match="loopback"):
            async with serve(instant(), host=host):
                pass  # pragma: no cover


def test_cli_arguments_build_the_config() -> None:
    argv = [
        *("--rpm", "60", "--tpm", "1000", "--rpd", "100", "--burst-seconds", "1"),
        *("--profile", "azure", "--seed", "3", "--latency-ttft", "0.1"),
        *("--tokens-per-second", "50", "--latency-scale", "0", "--charge-rule", "max"),
        *("--fault", "503_overloaded=0.05", "--fault", "500@10-12"),
        *("--model-limit", "gpt-4o:rpm=5,tpm=50", "--shared-limit", "family=a,b"),
        *("--quota-exhausted-key", "sk-broke"),
    ]
    args = build_parser().parse_args(argv)
    config = build_config(args)
    assert config.limits == MockLimits(rpm=60, tpm=1000, rpd=100, burst_seconds=1)
    assert config.model_limits["gpt-4o"] == MockLimits(rpm=5, tpm=50, burst_seconds=1)
    assert config.shared_limits == {"family": ("a", "b")}
    assert config.profile.name == "azure" and config.seed == 3
    assert config.latency.scale == 0 and config.latency.tokens_per_second == 50
    assert [rule.kind.value for rule in config.faults.rules] == ["503_overloaded", "500"]
    assert config.keys["sk-broke"].insufficient_quota
    assert main(["--fault", "bogus=1"]) == 2
    assert main(["--model-limit", "nonsense"]) == 2


def test_cli_selects_every_profile_and_the_providers_limits() -> None:
    for name in PROFILES:
        config = build_config(build_parser().parse_args(["--profile", name]))
        assert config.profile == Profile.named(name)
    argv = [
        *("--profile", "together", "--rpm", "0", "--tpm", "0", "--rps", "10", "--tps", "2000"),
        *("--input-tpm", "20000", "--output-tpm", "8000"),
        *("--concurrency", "16", "--in-flight-tokens", "5000"),
        *("--model-limit", "deepseek-chat:concurrency=4"),
    ]
    config = build_config(build_parser().parse_args(argv))
    assert config.profile.name == "together" and config.profile.header_style == "together"
    assert config.limits == MockLimits(
        rps=10,
        tps=2_000,
        input_tpm=20_000,
        output_tpm=8_000,
        concurrency=16,
        in_flight_tokens=5_000,
    )
    assert config.model_limits["deepseek-chat"] == MockLimits(concurrency=4)
    assert main(["--concurrency", "0"]) == 2


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "--tokens-per-second" in capsys.readouterr().out


def test_cli_serves_until_sigint() -> None:
    code = "import sys; from ratelimit_llm.mock._cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        [sys.executable, "-c", code, "--rpm", "2", "--latency-scale", "0", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:") and url.endswith("/v1"), url
            with httpx2.Client(base_url=url, timeout=10) as http:
                body = {"model": "gpt-4o", "messages": HELLO}
                auth = {"authorization": f"Bearer {KEY}"}
                assert http.post("/chat/completions", json=body, headers=auth).status_code == 200
                assert http.post("/chat/completions", json=body, headers=auth).status_code == 200
                assert http.post("/chat/completions", json=body, headers=auth).status_code == 429
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=15) == 0
        finally:
            if process.poll() is None:  # pragma: no cover - only when an assertion failed
                process.kill()
                process.wait()
        assert process.stderr is not None
        assert KEY not in process.stderr.read()


@pytest.mark.parametrize("module", ["starlette", "uvicorn"])
def test_mock_server_without_the_extra_says_what_to_install(module: str) -> None:
    # A module set to None in sys.modules cannot be imported: the extra is "not installed".
    code = (
        f"import sys; sys.modules[{module!r}] = None; "
        "from ratelimit_llm.cli import main; sys.exit(main(['mock-server', '--rpm', '5']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert f"{module} is not installed" in result.stderr
    assert "pip install 'ratelimit-llm[mock]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_other_missing_modules_are_not_blamed_on_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ratelimit_llm.cli import main as cli_main

    monkeypatch.setitem(sys.modules, "ratelimit_llm.mock._cli", None)
    with pytest.raises(ModuleNotFoundError):
        cli_main(["mock-server"])


_DOCS = Path(__file__).resolve().parents[2] / "docs" / "mock-server.md"
_SCRIPT = """\
import os, openai
client = openai.OpenAI()
completion = client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
)
print("served by", os.environ["OPENAI_BASE_URL"], completion.usage.total_tokens)
"""


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_documented_shell_recipe_works(tmp_path: Path) -> None:
    blocks = re.findall(r"```bash\n(.*?)```", _DOCS.read_text(), re.DOTALL)
    (recipe,) = [block for block in blocks if "ratelimit-llm mock-server" in block]
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "ratelimit-llm").exists():  # pragma: no cover - an install without scripts
        pytest.skip("the ratelimit-llm script is not installed next to the interpreter")
    (tmp_path / "my_script.py").write_text(_SCRIPT)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("OPENAI_BASE_URL", None)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", recipe + 'wait "$MOCK_PID"\n'],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"served by http://127\.0\.0\.1:\d+/v1 \d+\n", result.stdout), result.stdout
