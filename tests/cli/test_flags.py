"""The pflag/cobra command-line rules of etcdctl, and the json schema against the protobufs."""

from __future__ import annotations

import pytest

from petcd.cli.etcdctl import COMMANDS, parse_command_line
from petcd.cli.etcdctl.flags import UnknownCommand, UsageError
from petcd.cli.etcdctl.schema import MESSAGES


def parse(
    *argv: str, env: dict[str, str] | None = None
) -> tuple[list[str], dict[str, object], list[str], int]:
    inv = parse_command_line(list(argv), env or {})
    return inv.path, inv.parsed.values, inv.parsed.args, inv.parsed.dash_at


def test_global_flags_anywhere() -> None:
    path, values, args, _ = parse("--endpoints=a:1,b:2", "get", "k", "-w", "json", "--prefix")
    assert path == ["get"]
    assert values["endpoints"] == ["a:1", "b:2"]
    assert values["write-out"] == "json"
    assert values["prefix"] is True
    assert args == ["k"]


def test_flag_value_forms() -> None:
    _, values, _, _ = parse(
        "get", "k", "--limit", "5", "--rev=7", "-wfields", "--hex=false", "--dial-timeout=1m30s"
    )
    assert (values["limit"], values["rev"], values["write-out"], values["hex"]) == (5, 7, "fields", False)
    assert values["dial-timeout"] == 90.0


def test_booleans_do_not_take_the_next_word() -> None:
    _, values, args, _ = parse("get", "--prefix", "false")
    assert values["prefix"] is True
    assert args == ["false"]


def test_double_dash_ends_flags() -> None:
    path, _, args, dash = parse("watch", "k", "--", "echo", "--prefix")
    assert path == ["watch"]
    assert args == ["k", "echo", "--prefix"]
    assert dash == 1


def test_subcommands_and_group_flags() -> None:
    path, values, _, _ = parse("endpoint", "status", "--cluster")
    assert path == ["endpoint", "status"]
    assert values["cluster"] is True


def test_environment_fills_unset_global_flags() -> None:
    _, values, _, _ = parse("get", "k", env={"ETCDCTL_WRITE_OUT": "json", "ETCDCTL_DIAL_TIMEOUT": "3s"})
    assert values["write-out"] == "json"
    assert values["dial-timeout"] == 3.0
    # a flag given both ways is refused when the command makes a client (etcd's pkg/flags)
    inv = parse_command_line(["get", "k", "-w", "fields"], {"ETCDCTL_WRITE_OUT": "json"})
    assert inv.parsed.env_conflict == "ETCDCTL_WRITE_OUT"
    assert inv.parsed.values["write-out"] == "fields"
    # a value the flag cannot parse is ignored, as etcd does
    _, values, _, _ = parse("get", "k", env={"ETCDCTL_DIAL_TIMEOUT": "soon"})
    assert values["dial-timeout"] == 2.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["get", "--bogus"], "unknown flag: --bogus"),
        (["get", "--limit"], "flag needs an argument: --limit"),
        (
            ["get", "--limit", "x"],
            'invalid argument "x" for "--limit" flag: strconv.ParseInt: parsing "x": invalid syntax',
        ),
        (["get", "--prefix=maybe"], 'invalid argument "maybe" for "--prefix" flag'),
        (["frob"], "frob"),
        (["get", "-q"], "unknown shorthand flag: 'q' in -q"),
    ],
)
def test_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as err:
        parse(*argv)
    assert str(err.value).startswith(message)


def test_help_and_prefixes() -> None:
    assert parse_command_line(["get", "--help"], {}).wants_help
    assert parse_command_line(["get", "k", "-h"], {}).wants_help
    assert not parse_command_line(["get", "k", "--help=false"], {}).wants_help
    assert parse_command_line(["member"], {}).wants_help
    inv = parse_command_line(["member", "frob"], {})
    assert (inv.path, inv.wants_help) == (["member"], True)
    # cobra's prefix matching (etcdctl enables it): a unique prefix names the command
    assert parse("mem", "lis")[0] == ["member", "list"]
    with pytest.raises(UnknownCommand):
        parse("e")  # elect, endpoint
    # an unknown flag is reported for the command reached so far
    with pytest.raises(UsageError) as err:
        parse("member", "--bogus", "list")
    assert err.value.path == ["member"]


def test_every_command_has_an_implementation() -> None:
    import importlib

    for cmd in COMMANDS.values():
        for c in [cmd, *cmd.subcommands.values()]:
            if c.target:
                module, func = c.target.split(":")
                assert callable(getattr(importlib.import_module(f"petcd.cli.etcdctl.{module}"), func))


def test_schema_matches_the_protobuf_descriptors() -> None:
    from google.protobuf.descriptor import FieldDescriptor

    from petcd.pb.authpb import auth_pb2
    from petcd.pb.etcdserverpb import rpc_pb2
    from petcd.pb.mvccpb import kv_pb2

    for name, fields in MESSAGES.items():
        cls = getattr(rpc_pb2, name, None) or getattr(kv_pb2, name, None) or getattr(auth_pb2, name)
        desc = cls.DESCRIPTOR
        plain = [f for f in fields if not f[1].startswith("oneof:")]
        proto = [f for f in desc.fields if f.containing_oneof is None]
        # declaration order is Go's struct order, hence json order
        assert [f[0] for f in plain] == [f.name for f in proto], name
        for (fname, kind, repeated), fd in zip(plain, proto, strict=True):
            is_repeated = bool(fd.is_repeated)
            assert repeated == is_repeated, (name, fname)
            if fd.type == FieldDescriptor.TYPE_MESSAGE:
                assert kind == fd.message_type.name, (name, fname)
            elif fd.type == FieldDescriptor.TYPE_ENUM:
                assert kind.startswith("enum:"), (name, fname)
            elif fd.type == FieldDescriptor.TYPE_BYTES:
                assert kind == "bytes", (name, fname)
            elif fd.type == FieldDescriptor.TYPE_STRING:
                assert kind == "str", (name, fname)
            elif fd.type == FieldDescriptor.TYPE_BOOL:
                assert kind == "bool", (name, fname)
            else:
                assert kind == "int", (name, fname)
