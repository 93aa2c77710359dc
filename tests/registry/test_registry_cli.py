"""``pallet registry serve`` runs out of the box: data under the pallet root, loopback only."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import time


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_serve_uses_the_pallet_root_and_stops_cleanly(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pallet",
            "--root",
            str(tmp_path / "root"),
            "registry",
            "serve",
            "--addr",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(150):
            try:
                assert _get(port, "/healthz") == 200
                break
            except OSError:
                time.sleep(0.1)
        assert _get(port, "/v2/") == 200
        assert (tmp_path / "root" / "registry" / "metadata.db").is_file()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"listening on http://127.0.0.1:{port}" in err


def test_serve_with_a_bad_address_is_one_line_error(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pallet",
            "--root",
            str(tmp_path),
            "registry",
            "serve",
            "--addr",
            "nope",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode != 0
    assert out.stderr.strip() == "error: invalid address 'nope': expected HOST:PORT"


def test_serve_with_an_unusable_data_dir_is_one_line_error(tmp_path, cli):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    out = cli("registry", "serve", "--addr", "127.0.0.1:0", "--data", str(blocker / "sub"))
    assert out.returncode != 0
    assert out.stderr.startswith(f"error: cannot use data directory {blocker / 'sub'}")
