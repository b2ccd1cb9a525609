"""Toxiproxy (Shopify's fault-injecting TCP proxy) between the tests' clients and a server.

Built from the Go module proxy, the only source reachable here. ``go install ...@latest`` there
resolves to v2.5.0 (the proxy's version list stops at it), so the version is pinned: v2.12.0 is
the newest the proxy serves. The HTTP API is driven with the standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .servers import cache_root, free_port, terminate

VERSION = "v2.12.0"
MODULE = "github.com/Shopify/toxiproxy/v2"


def build() -> Path:
    """The toxiproxy-server binary, built once (~40-55 s on 2 cores, cold) and cached."""
    binary = cache_root() / f"toxiproxy-{VERSION}" / "toxiproxy-server"
    if binary.is_file():
        return binary
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("Go is not installed; Toxiproxy is built from source with it")
    download = [go, "mod", "download", "-json", f"{MODULE}@{VERSION}"]
    src = json.loads(subprocess.run(download, check=True, capture_output=True).stdout)["Dir"]
    binary.parent.mkdir(parents=True, exist_ok=True)
    # A per-process name and an atomic rename: parallel test workers may build at once.
    partial = binary.with_name(f"{binary.name}.partial-{os.getpid()}")
    # go build, unlike go install, takes -o; it only reads the (read-only) module directory.
    # -X stamps the version that release builds report at GET /version (else "git").
    ldflags = f"-s -w -X {MODULE}.Version={VERSION}"
    command = [go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(partial), "./cmd/server"]
    subprocess.run(command, cwd=src, check=True)
    partial.replace(binary)
    return binary


class Toxiproxy:
    """One toxiproxy-server on 127.0.0.1; its proxies listen on ports the kernel picks."""

    def __init__(self, binary: Path | None = None) -> None:
        self.binary = binary or build()
        self.api = f"http://127.0.0.1:{free_port()}"
        # Logs go to a file, not a pipe: it logs every connection and a full pipe would stall it.
        fd, log = tempfile.mkstemp(prefix="toxiproxy-", suffix=".log")
        os.close(fd)
        self.log = Path(log)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Toxiproxy:
        """Start the server and return once its API answers."""
        args = [str(self.binary), "-host", "127.0.0.1", "-port", self.api.rsplit(":", 1)[1]]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            if (code := self.process.poll()) is not None:
                raise RuntimeError(f"toxiproxy-server exited with {code}: {self.log.read_text()[-2000:]}")
            try:
                self.request("GET", "/version")
                return self
            except OSError:  # refused until the API listens (URLError is an OSError)
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"toxiproxy-server API not up after {timeout} s") from None
                time.sleep(0.02)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the API; return its decoded JSON reply (None when empty)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.api + path, data, {"Content-Type": "application/json"}, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:  # the body says why (unknown toxic, duplicate name...)
            raise RuntimeError(f"{method} {path}: {exc.code} {exc.read().decode(errors='replace').strip()}") from None
        return json.loads(raw) if raw else None

    def proxy(self, name: str, upstream: str) -> int:
        """Create a proxy to upstream "host:port"; return the port it listens on."""
        # Port 0: the kernel picks and the reply carries the bound address, so no free-port race.
        created = self.request("POST", "/proxies", {"name": name, "listen": "127.0.0.1:0", "upstream": upstream})
        return int(created["listen"].rsplit(":", 1)[1])

    def add_toxic(self, proxy: str, kind: str, stream: str = "downstream", **attributes: int) -> str:
        """Add a toxic and return its name; "downstream" is server->client, "upstream" the other way."""
        name = f"{kind}_{stream}"
        body = {"name": name, "type": kind, "stream": stream, "toxicity": 1.0, "attributes": attributes}
        self.request("POST", f"/proxies/{proxy}/toxics", body)
        return name

    def remove_toxic(self, proxy: str, name: str) -> None:
        """Remove a toxic from the proxy and its open connections (data a toxic dropped stays lost)."""
        self.request("DELETE", f"/proxies/{proxy}/toxics/{name}")

    def enable(self, proxy: str, enabled: bool = True) -> None:
        """Disabling closes the listener and every open connection; enabling listens again."""
        self.request("POST", f"/proxies/{proxy}", {"enabled": enabled})

    def reset(self) -> None:
        """Remove every toxic and enable every proxy."""
        self.request("POST", "/reset")

    def stop(self) -> None:
        """Stop the server; it closes every proxied connection."""
        terminate(self.process)
        self.process = None
        self.log.unlink(missing_ok=True)

    close = stop

    def __enter__(self) -> Toxiproxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
