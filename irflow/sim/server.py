"""HTTPS mount: the tenant behind a threaded stdlib HTTP server on loopback, with its own throw-away CA.

Azure SDK bearer-token policies refuse plain http, hence TLS. ``start()`` generates the CA and a
certificate for 127.0.0.1, localhost and ::1 into a private temporary directory (removed by ``stop()``)::

    with SimServer(Tenant.demo()) as server:
        client = StorageManagementClient(cred, server.subscription_id, base_url=server.endpoint,
                                         credential_scopes=[server.endpoint + "/.default"],
                                         connection_verify=server.ca_file)
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import shutil
import socket
import socketserver
import ssl
import struct
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from irflow.sim import ca
from irflow.sim.http import SimRequest
from irflow.sim.models import SimConnectionReset, Tenant
from irflow.sim.urls import router

log = logging.getLogger("irflow.sim")

MAX_BODY_BYTES = 4 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: _TLSServer
    server_version = "irflow-sim"
    sys_version = ""

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ValueError as exc:
            self.send_error(400, str(exc))
            return
        host = self.headers.get("Host") or self.server.authority
        request = SimRequest.from_url(
            self.command,
            f"https://{host}{self.path}",
            self.headers.items(),
            body,
            peer=self.client_address[0],
        )
        try:
            response = router.dispatch(self.server.tenant, request)
        except SimConnectionReset:
            # SO_LINGER 0: closing sends a TCP RST instead of a FIN, as a reset connection looks to a client
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            raise
        payload = response.encoded()
        self.send_response(response.status)
        for name, value in response.wire_headers().items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise ValueError("request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY_BYTES:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length else b""

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        # Method and path only: query strings may one day carry SAS signatures; headers carry the token.
        path = self.path.split("?", 1)[0]
        log.debug("%s %s %s -> %s", self.client_address[0], self.command, path, code)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s: %s", self.client_address[0], format % args)


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], tenant: Tenant, context: ssl.SSLContext, family: int
    ) -> None:
        self.address_family = family
        self.tenant = tenant
        self.ssl_context = context
        self.authority = ""
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN (a reverse DNS lookup); loopback needs none.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS handshake in the worker thread, so a slow client never stalls the accept loop."""
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        with self._connections_lock:
            self._connections.add(tls)
        try:
            _Handler(tls, client_address, self)
        except (ConnectionError, ssl.SSLError, TimeoutError):
            pass
        finally:
            with self._connections_lock:
                self._connections.discard(tls)
            with contextlib.suppress(OSError):
                tls.close()

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def _url_host(host: str) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host


class SimServer:
    """The tenant over HTTPS on ``host:port`` (port 0: any free port). Use as a context manager or call
    :meth:`start` / :meth:`stop`."""

    def __init__(self, tenant: Tenant, host: str = "127.0.0.1", port: int = 0) -> None:
        self.tenant = tenant
        self.host = host
        self.port = port
        self._server: _TLSServer | None = None
        self._thread: threading.Thread | None = None
        self._directory: Path | None = None
        self._certificates: ca.CertificateFiles | None = None

    # ----------------------------------------------------------------- facts for clients
    @property
    def endpoint(self) -> str:
        """``https://127.0.0.1:PORT``: the ARM base URL (and authority) of the simulated tenant."""
        self._require_started()
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else "::1" if self.host == "::" else self.host  # noqa: S104
        return f"https://{_url_host(host)}:{self.port}"

    @property
    def ca_file(self) -> str:
        """Path of the PEM CA certificate to trust (``connection_verify=``, ``IRFLOW_AZURE_CA_BUNDLE``)."""
        self._require_started()
        assert self._certificates is not None
        return str(self._certificates.ca_file)

    @property
    def token(self) -> str:
        return self.tenant.token

    @property
    def subscription_id(self) -> str | None:
        return self.tenant.default_subscription_id

    @property
    def running(self) -> bool:
        return self._server is not None

    def connection_info(self) -> dict[str, Any]:
        """What ``irflow sim serve`` prints: endpoint, CA file, token, subscription and the ``IRFLOW_*``
        environment that points irflow at this tenant."""
        return {
            "endpoint": self.endpoint,
            "ca_file": self.ca_file,
            "token": self.token,
            "subscription_id": self.subscription_id,
            "env": {
                "IRFLOW_AZURE_CLOUD": "custom",
                "IRFLOW_ARM_ENDPOINT": self.endpoint,
                "IRFLOW_AZURE_CA_BUNDLE": self.ca_file,
                "IRFLOW_AZURE_TOKEN": self.token,
                "IRFLOW_AUTHORITY": self.endpoint,
                # the static token carries no oid claim: irflow is told who it is, as a deployment may be
                "IRFLOW_SELF_OBJECT_ID": self.tenant.principal_id,
                **self._origin_env(),
            },
        }

    def _origin_env(self) -> dict[str, str]:
        """irflow's origin as a deployment configures it: the caller origin the tenant's firewalls see."""
        origin = self.tenant.caller_origin
        env: dict[str, str] = {}
        if origin is not None and origin.ip:
            env["IRFLOW_EGRESS_IPS"] = origin.ip
        if origin is not None and origin.subnet_id:
            env["IRFLOW_SUBNET_ID"] = origin.subnet_id
        return env

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> SimServer:
        if self._server is not None:
            raise RuntimeError("server already started")
        directory = Path(tempfile.mkdtemp(prefix="irflow-sim-"))
        try:
            hosts = tuple(dict.fromkeys((*ca.DEFAULT_HOSTS, self.host) if self.host else ca.DEFAULT_HOSTS))
            certificates = ca.generate(directory, hosts)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(certificates.cert_file, certificates.key_file)
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            server = _TLSServer((self.host, self.port), self.tenant, context, family)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        self._directory, self._certificates, self._server = directory, certificates, server
        self.port = server.server_address[1]
        server.authority = f"{_url_host(self.host)}:{self.port}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="irflow-sim-server", daemon=True
        )
        self._thread.start()
        log.info("irflow.sim serving at %s", self.endpoint)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
        log.info("irflow.sim server stopped")

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _require_started(self) -> None:
        if self._server is None and self._certificates is None:
            raise RuntimeError("server not started")
