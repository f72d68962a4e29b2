"""What a running command gets: its flags and arguments, the output writer and a client.

The client is made on first use from the global flags (endpoints, timeouts, TLS, user), so
commands that fail on their arguments never touch the network. ``--user name:password`` is split
as etcdctl does; a user without a password reads it from the terminal.
"""

from __future__ import annotations

import sys

from petcd.cli.etcdctl.errors import (
    EXIT_BAD_ARGS,
    EXIT_BAD_CONNECTION,
    EXIT_BAD_FEATURE,
    EXIT_ERROR,
    CtlError,
)
from petcd.cli.etcdctl.printer import FORMATS, Printer
from petcd.client import Client, ClientConfig, ClientError, Endpoint, TlsConfig, parse_endpoint

TYPE_CHECKING = False  # typing is not imported at run time: it costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from petcd.cli.etcdctl import Invocation


class Context:
    def __init__(self, inv: Invocation, environ: dict[str, str]) -> None:
        self.inv = inv
        self.environ = environ
        self.flags: dict[str, Any] = inv.parsed.values
        self.changed = inv.parsed.changed
        self.args = inv.parsed.args
        self.dash_at = inv.parsed.dash_at
        self.out = sys.stdout.buffer
        self.err = sys.stderr.buffer
        self._client: Client | None = None
        self._endpoints: list[str] | None = None
        self._printer: Printer | None = None

    # ---- flags -------------------------------------------------------------------------------

    def flag(self, name: str) -> Any:
        return self.flags[name]

    @property
    def printer(self) -> Printer:
        if self._printer is None:
            fmt = self.flags["write-out"]
            if fmt not in FORMATS:
                raise CtlError(EXIT_BAD_FEATURE, "unsupported output format")
            self._printer = Printer(fmt, bool(self.flags["hex"]), self.out)
        return self._printer

    def client_config(self, endpoints: list[str] | None = None) -> ClientConfig:
        for name in ("cert", "key", "cacert"):  # etcdctl's keyAndCertFromCmd
            if name in self.changed and not self.flags[name]:
                raise CtlError(EXIT_BAD_ARGS, f"empty string is passed to --{name} option")
        user = str(self.flags["user"])
        password = str(self.flags["password"])
        if user and not password:  # with --password, --user is the name as given
            if ":" in user:
                user, password = user.split(":", 1)
            else:
                import getpass

                password = getpass.getpass("Password: ")
        eps = endpoints if endpoints is not None else self.endpoints()
        if not eps:
            raise CtlError(EXIT_ERROR, "no endpoints")
        return ClientConfig(
            endpoints=eps,
            dial_timeout_s=float(self.flags["dial-timeout"]),
            command_timeout_s=float(self.flags["command-timeout"]),
            keepalive_time_s=float(self.flags["keepalive-time"]),
            keepalive_timeout_s=float(self.flags["keepalive-timeout"]),
            user=user,
            password=password,
            tls=TlsConfig(
                cacert=self.flags["cacert"],
                cert=self.flags["cert"],
                key=self.flags["key"],
                insecure_skip_verify=bool(self.flags["insecure-skip-tls-verify"]),
                server_name=str(self.flags["discovery-srv"]),
            ),
            insecure_transport=bool(self.flags["insecure-transport"]),
            max_request_bytes=int(self.flags["max-request-bytes"]),
            max_recv_bytes=int(self.flags["max-recv-bytes"]),
        )

    def endpoints(self) -> list[str]:
        """The endpoints: from DNS SRV records with ``--discovery-srv``, else ``--endpoints``."""
        if self._endpoints is None:
            found: list[str] = []
            domain = str(self.flags["discovery-srv"])
            if domain:
                from petcd.cli.etcdctl.srv import DnsError, discover_endpoints

                notices: list[str] = []
                try:
                    found = discover_endpoints(
                        domain,
                        str(self.flags["discovery-srv-name"]),
                        bool(self.flags["insecure-discovery"]),
                        self.environ,
                        notices,
                    )
                except DnsError as err:
                    raise CtlError(EXIT_ERROR, str(err)) from None
                for notice in notices:
                    self.err.write(f"{notice}\n".encode())
            self._endpoints = found or [e.strip() for e in self.flags["endpoints"]]
        return self._endpoints

    def endpoint(self, text: str) -> Endpoint:
        """One endpoint of the command line, with TLS as the client's other endpoints (the TLS
        flags or --insecure-transport=false make a bare host:port a TLS endpoint)."""
        config = self.client.config
        return parse_endpoint(text, config.tls.configured or not config.insecure_transport)

    def debug_flags(self) -> None:
        """``--debug``: the command's inherited flags (the global ones, and a group's such as
        ``--cluster``) as ETCDCTL_* assignments on stderr, sorted, as etcdctl prints them; for watch
        also the two placeholders etcdctl adds to silence its ETCDCTL_WATCH_* warnings."""
        from petcd.cli.etcdctl import COMMANDS, GLOBAL_FLAGS
        from petcd.cli.etcdctl.flags import BOOL, DURATION, STRINGS
        from petcd.cli.etcdctl.gofmt import go_duration

        path = self.inv.path
        group = COMMANDS[path[0]].flags if len(path) > 1 else []
        lines: dict[str, str] = {}
        for f in [*GLOBAL_FLAGS, *group]:
            if f.hidden:
                continue
            value = self.flags[f.name]
            if f.kind == BOOL:
                text = "true" if value else "false"
            elif f.kind == DURATION:
                text = go_duration(round(value * 1e9))
            elif f.kind == STRINGS:
                text = "[" + ",".join(value) + "]"  # pflag's StringSlice writes CSV
            else:
                text = str(value)
            lines[f.name] = text
        if path == ["watch"]:
            lines["watch-key"] = lines["watch-range-end"] = ""
        for name in sorted(lines):
            self.err.write(f"ETCDCTL_{name.upper().replace('-', '_')}={lines[name]}\n".encode())
        self.err.flush()

    @property
    def client(self) -> Client:
        if self._client is None:
            if self.flags.get("debug"):
                self.debug_flags()
            if self.inv.parsed.env_conflict:
                raise CtlError(
                    EXIT_ERROR,
                    f'conflicting environment variable "{self.inv.parsed.env_conflict}" is shadowed by '
                    "corresponding command-line flag (either unset environment variable or disable flag)",
                )
            try:
                transport = self.environ.get("PETCD_ETCDCTL_TRANSPORT", "auto")
                self._client = Client(self.client_config(), transport)
            except ValueError as err:
                raise CtlError(EXIT_BAD_ARGS, str(err)) from None
            if self.flags.get("auth-jwt-token"):
                self._client.use_token(str(self.flags["auth-jwt-token"]))
            elif self._client.config.user:
                # etcd's client authenticates while connecting; a failure there is a bad connection
                try:
                    self._client.authenticate()
                except ClientError as err:
                    raise CtlError(EXIT_BAD_CONNECTION, err.message) from None
        return self._client

    def call(self, method: str, body: dict[str, Any] | None = None, fail: str = "%s") -> dict[str, Any]:
        """A unary call; a failure exits 1 with etcd's message (formatted through ``fail``)."""
        try:
            return self.client.call(method, body or {})
        except ClientError as err:
            raise CtlError(EXIT_ERROR, fail % err.message) from None

    # ---- output ------------------------------------------------------------------------------

    def flush(self) -> None:
        try:  # noqa: SIM105
            self.out.flush()
        except (BrokenPipeError, ValueError):
            pass

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
