"""`ledgerflow up` brings the whole stack up, answers /readyz, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pyotp
import pytest

from stack.service import free_port

REPO = Path(__file__).resolve().parents[2]


def stack_env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LEDGERFLOW_HOME": str(home),
        "LEDGERFLOW_PG_PORT": str(free_port()),
        "LEDGERFLOW_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "LEDGERFLOW_TEMPORAL_UI_PORT": str(free_port()),
        "LEDGERFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "LEDGERFLOW_KAFKA_CONTROLLER_PORT": str(free_port()),
        "LEDGERFLOW_API_PORT": str(free_port()),
        "PYTHONUNBUFFERED": "1",
    }


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def wait_for_line(proc: subprocess.Popen[str], marker: str, timeout_s: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"never saw {marker!r}; output:\n{''.join(lines)}")


@pytest.mark.slow
def test_up_ready_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    env = stack_env(tmp_path / "home")
    # Share the jar cache with the repo's, so the test does not resolve Kafka again.
    cache = REPO / ".ledgerflow" / "kafka-dist"
    if cache.exists():
        (tmp_path / "home").mkdir()
        (tmp_path / "home" / "kafka-dist").symlink_to(cache)
    proc = subprocess.Popen(
        [sys.executable, "-m", "stack.cli", "up"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = wait_for_line(proc, "Press Ctrl-C", timeout_s=240)
        output = "".join(lines)
        for part in ("postgresql", "temporal", "kafka", "worker", "relay", "api"):
            assert f"{part}: ready" in output, output
        api = f"http://127.0.0.1:{env['LEDGERFLOW_API_PORT']}"
        ready = json.loads(urllib.request.urlopen(f"{api}/readyz", timeout=10).read())
        assert {name for name, p in ready["parts"].items() if p["ok"]} == {"postgresql", "temporal", "kafka"}
        assert http_status(f"http://127.0.0.1:{env['LEDGERFLOW_TEMPORAL_UI_PORT']}/") == 200
        stack_env_file = (tmp_path / "home" / "stack.env").read_text()
        assert f"LEDGERFLOW_API_PORT={env['LEDGERFLOW_API_PORT']}" in stack_env_file
        pids = json.loads((tmp_path / "home" / "pids.json").read_text())
        # Two API processes by default (LEDGERFLOW_API_PROCESSES), one worker, one relay.
        assert set(pids) == {"postgresql", "temporal", "kafka", "worker-1", "relay-1", "api-1", "api-2"}

        # One API process dies: the launcher says so and starts it again; the port answers throughout.
        os.killpg(pids["api-1"], signal.SIGKILL)
        assert http_status(f"{api}/healthz") == 200
        restarted = "".join(wait_for_line(proc, "api-1 restarted as pid", timeout_s=120))
        assert "api-1 exited with code -9; restarting it" in restarted
        pids = json.loads((tmp_path / "home" / "pids.json").read_text())
        assert f"api-1 restarted as pid {pids['api-1']} " in restarted
        served = {json.loads(urllib.request.urlopen(f"{api}/healthz", timeout=10).read())["pid"] for _ in range(30)}
        assert served <= {pids["api-1"], pids["api-2"]}  # the restarted process and the other one

        children = {pid: psutil.Process(pid) for pid in pids.values()}
        descendants = [c for p in children.values() for c in p.children(recursive=True)]

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    alive = [p for p in [*children.values(), *descendants] if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"left behind: {alive}"
    assert not (tmp_path / "home" / "pids.json").exists()
    # The data stays for the next start.
    assert (tmp_path / "home" / "pgdata" / "PG_VERSION").exists()
    assert (tmp_path / "home" / "kafka" / "data" / "meta.properties").exists()


def test_port_taken_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    env = stack_env(tmp_path / "home")
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", int(env["LEDGERFLOW_PG_PORT"])))
        blocker.listen()
        result = subprocess.run(
            [sys.executable, "-m", "stack.cli", "up"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "already in use" in result.stderr
    assert "LEDGERFLOW_PG_PORT" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_jdk_is_one_line_that_says_what_to_do(tmp_path: Path) -> None:
    env = stack_env(tmp_path / "home")
    env.pop("JAVA_HOME", None)
    env["PATH"] = str(Path(sys.executable).parent)  # the venv only: no java on it
    result = subprocess.run(
        [sys.executable, "-m", "stack.cli", "up"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "java" in result.stderr.lower() or "jdk" in result.stderr.lower()
    assert "install" in result.stderr.lower()


def test_staff_create_cli(migrated_db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "LEDGERFLOW_DATABASE_URL": migrated_db_url, "LEDGERFLOW_HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "stack.cli", "staff", "create", "--email", "ops@example.test", "--role", "operator"]
    first = subprocess.run(cmd, env=env, cwd=REPO, input="long-enough-pw\n", capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "created staff ops@example.test (operator)" in first.stdout
    # The enrolment URI, printed once; stored only sealed, and pending until a first code.
    uris = re.findall(r"otpauth://totp/\S+", first.stdout)
    assert len(uris) == 1 and "Ledgerflow" in uris[0]
    secret = pyotp.parse_uri(uris[0]).secret
    import psycopg

    with psycopg.connect(migrated_db_url.replace("+psycopg", "")) as conn:
        rows = conn.execute("SELECT secret_sealed, enabled_at FROM totp_credentials").fetchall()
    assert len(rows) == 1 and rows[0][1] is None
    assert rows[0][0].startswith("lfs1.") and secret not in rows[0][0]
    again = subprocess.run(cmd, env=env, cwd=REPO, input="long-enough-pw\n", capture_output=True, text=True)
    assert again.returncode == 1
    assert "already exists" in again.stderr
    short = subprocess.run(
        [*cmd[:-4], "--email", "x@example.test", "--role", "admin"],
        env=env,
        cwd=REPO,
        input="short\n",
        capture_output=True,
        text=True,
    )
    assert short.returncode == 1
    assert "at least 8" in short.stderr


def test_totp_cli_prints_the_dev_admins_code(migrated_db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "LEDGERFLOW_DATABASE_URL": migrated_db_url, "LEDGERFLOW_HOME": str(tmp_path)}
    totp = [sys.executable, "-m", "stack.cli", "totp"]
    missing = subprocess.run(totp, env=env, cwd=REPO, capture_output=True, text=True)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    seed_cmd = [sys.executable, "-m", "stack.cli", "seed"]
    seed = subprocess.run(seed_cmd, env=env, cwd=REPO, capture_output=True, text=True)
    assert seed.returncode == 0, seed.stderr
    path = tmp_path / "secrets" / "dev-admin-totp"
    assert path.stat().st_mode & 0o777 == 0o600
    device = pyotp.parse_uri(path.read_text().strip())
    assert isinstance(device, pyotp.TOTP)
    before = device.now()
    result = subprocess.run(totp, env=env, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in {before, device.now()}
    help_text = subprocess.run([sys.executable, "-m", "stack.cli", "--help"], capture_output=True, text=True, cwd=REPO)
    assert "local development only" in " ".join(help_text.stdout.split())


def test_audit_verify_cli(migrated_db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "LEDGERFLOW_DATABASE_URL": migrated_db_url, "LEDGERFLOW_HOME": str(tmp_path)}
    create = [sys.executable, "-m", "stack.cli", "staff", "create", "--email", "a@example.test", "--role", "auditor"]
    subprocess.run(create, env=env, cwd=REPO, input="long-enough-pw\n", capture_output=True, text=True, check=True)
    ok = subprocess.run(
        [sys.executable, "-m", "stack.cli", "audit", "verify"], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "audit log OK" in ok.stdout
    # Tamper with the record behind the trigger's back: verify names it and fails.
    import psycopg

    with psycopg.connect(migrated_db_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE audit_log SET action = 'staff.delete'")
    broken = subprocess.run(
        [sys.executable, "-m", "stack.cli", "audit", "verify"], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert broken.returncode == 1
    assert "broken at record" in broken.stdout + broken.stderr
