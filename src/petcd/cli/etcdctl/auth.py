"""auth, user and role: etcdctl's access-control commands (unary Auth RPCs through the client)."""

from __future__ import annotations

import sys

from petcd.cli.etcdctl.context import Context
from petcd.cli.etcdctl.errors import EXIT_BAD_ARGS, EXIT_ERROR, CtlError
from petcd.cli.etcdctl.kv import arg_bytes, b64, prefix_end
from petcd.client import ClientError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    JsonDict = dict[str, Any]

PERMISSIONS = {"READ": 0, "WRITE": 1, "READWRITE": 2}


def _args(ctx: Context, n: int, message: str) -> list[str]:
    if len(ctx.args) != n:
        raise CtlError(EXIT_BAD_ARGS, message)
    return ctx.args


# ---- auth --------------------------------------------------------------------------------------


def auth_enable(ctx: Context) -> int:
    _args(ctx, 0, "auth enable command does not accept any arguments")
    client = ctx.client
    while True:
        try:
            client.call("AuthEnable", {})
            break
        except ClientError as err:
            if err.message != "etcdserver: root user does not have root role":
                raise CtlError(EXIT_ERROR, err.message) from None
        # as etcdctl: give root the root role, then try again
        try:
            client.call("RoleAdd", {"name": "root"})
            client.call("UserGrantRole", {"user": "root", "role": "root"})
        except ClientError as err:
            raise CtlError(EXIT_ERROR, err.message) from None
    ctx.printer.line("Authentication Enabled")
    return 0


def auth_disable(ctx: Context) -> int:
    _args(ctx, 0, "auth disable command does not accept any arguments")
    ctx.call("AuthDisable", {})
    ctx.printer.line("Authentication Disabled")
    return 0


def auth_status(ctx: Context) -> int:
    _args(ctx, 0, "auth status command does not accept any arguments")
    printer = ctx.printer
    printer.auth_status(ctx.call("AuthStatus", {}))
    return 0


# ---- user --------------------------------------------------------------------------------------


def _read_password(ctx: Context, name: str) -> str:
    if not ctx.flag("interactive"):
        words = sys.stdin.readline().split()
        return words[0] if words else ""
    import getpass

    first = getpass.getpass(f"Password of {name}: ")
    if not first:
        raise CtlError(EXIT_BAD_ARGS, "empty password")
    second = getpass.getpass(f"Type password of {name} again for confirmation: ")
    if first != second:
        raise CtlError(EXIT_BAD_ARGS, "given passwords are different")
    return first


def user_add(ctx: Context) -> int:
    arg = _args(ctx, 1, "user add command requires user name as its argument")[0]
    body: JsonDict = {}
    if ctx.flag("no-password"):
        user, password = arg, ""
        body["options"] = {"no_password": True}
    elif ctx.flag("new-user-password"):
        user, password = arg, str(ctx.flag("new-user-password"))
    elif ":" in arg:
        user, password = arg.split(":", 1)
        if not user:
            raise CtlError(EXIT_BAD_ARGS, "empty user name is not allowed")
    else:
        user, password = arg, _read_password(ctx, arg)
    body.update({"name": user, "password": password})
    printer = ctx.printer
    printer.auth_reply("AuthUserAddResponse", ctx.call("UserAdd", body), f"User {user} created")
    return 0


def user_delete(ctx: Context) -> int:
    name = _args(ctx, 1, "user delete command requires user name as its argument")[0]
    printer = ctx.printer
    printer.auth_reply(
        "AuthUserDeleteResponse", ctx.call("UserDelete", {"name": name}), f"User {name} deleted"
    )
    return 0


def user_get(ctx: Context) -> int:
    name = _args(ctx, 1, "user get command requires user name as its argument")[0]
    printer = ctx.printer
    resp = ctx.call("UserGet", {"name": name})
    if ctx.flag("detail"):
        printer.line(f"User: {name}")
        for role in resp.get("roles", []):
            printer.line()
            printer.role_get(role, ctx.call("RoleGet", {"role": role}))
        return 0
    printer.user_get(name, resp)
    return 0


def user_list(ctx: Context) -> int:
    _args(ctx, 0, "user list command requires no arguments")
    printer = ctx.printer
    printer.names("AuthUserListResponse", ctx.call("UserList", {}), "users")
    return 0


def user_passwd(ctx: Context) -> int:
    name = _args(ctx, 1, "user passwd command requires user name as its argument")[0]
    password = _read_password(ctx, name)
    printer = ctx.printer
    resp = ctx.call("UserChangePassword", {"name": name, "password": password})
    printer.auth_reply("AuthUserChangePasswordResponse", resp, "Password updated")
    return 0


def user_grant_role(ctx: Context) -> int:
    user, role = _args(ctx, 2, "user grant command requires user name and role name as its argument")
    printer = ctx.printer
    resp = ctx.call("UserGrantRole", {"user": user, "role": role})
    printer.auth_reply("AuthUserGrantRoleResponse", resp, f"Role {role} is granted to user {user}")
    return 0


def user_revoke_role(ctx: Context) -> int:
    user, role = _args(ctx, 2, "user revoke-role requires user name and role name as its argument")
    printer = ctx.printer
    resp = ctx.call("UserRevokeRole", {"name": user, "role": role})
    printer.auth_reply("AuthUserRevokeRoleResponse", resp, f"Role {role} is revoked from user {user}")
    return 0


# ---- role --------------------------------------------------------------------------------------


def role_add(ctx: Context) -> int:
    name = _args(ctx, 1, "role add command requires role name as its argument")[0]
    printer = ctx.printer
    printer.auth_reply("AuthRoleAddResponse", ctx.call("RoleAdd", {"name": name}), f"Role {name} created")
    return 0


def role_delete(ctx: Context) -> int:
    name = _args(ctx, 1, "role delete command requires role name as its argument")[0]
    printer = ctx.printer
    printer.auth_reply(
        "AuthRoleDeleteResponse", ctx.call("RoleDelete", {"role": name}), f"Role {name} deleted"
    )
    return 0


def role_get(ctx: Context) -> int:
    name = _args(ctx, 1, "role get command requires role name as its argument")[0]
    printer = ctx.printer
    printer.role_get(name, ctx.call("RoleGet", {"role": name}))
    return 0


def role_list(ctx: Context) -> int:
    _args(ctx, 0, "role list command requires no arguments")
    printer = ctx.printer
    printer.names("AuthRoleListResponse", ctx.call("RoleList", {}), "roles")
    return 0


def _perm_range(ctx: Context, args: list[str]) -> tuple[bytes, bytes]:
    prefix, from_key = bool(ctx.flag("prefix")), bool(ctx.flag("from-key"))
    key = arg_bytes(args[0])
    if not key:
        if prefix and from_key:
            raise CtlError(EXIT_BAD_ARGS, "--from-key and --prefix flags are mutually exclusive")
        # the empty prefix means the whole key space: ["\x00", "\x00")
        return b"\x00", (b"\x00" if prefix or from_key else b"")
    if len(args) == 1:
        if prefix:
            if from_key:
                raise CtlError(EXIT_BAD_ARGS, "--from-key and --prefix flags are mutually exclusive")
            return key, prefix_end(key)
        return key, (b"\x00" if from_key else b"")
    if prefix:
        raise CtlError(EXIT_BAD_ARGS, "unexpected endkey argument with --prefix flag")
    if from_key:
        raise CtlError(EXIT_BAD_ARGS, "unexpected endkey argument with --from-key flag")
    return key, arg_bytes(args[1])


def role_grant_permission(ctx: Context) -> int:
    args = ctx.args
    if len(args) < 3:
        raise CtlError(
            EXIT_BAD_ARGS,
            "role grant command requires role name, permission type, and key [endkey] as its argument",
        )
    perm = PERMISSIONS.get(args[1].upper())
    if perm is None:
        raise CtlError(EXIT_BAD_ARGS, f"invalid permission type: {args[1]}")
    key, end = _perm_range(ctx, args[2:])
    permission: JsonDict = {"permType": perm, "key": b64(key)}
    if end:
        permission["range_end"] = b64(end)
    printer = ctx.printer
    resp = ctx.call("RoleGrantPermission", {"name": args[0], "perm": permission})
    printer.auth_reply("AuthRoleGrantPermissionResponse", resp, f"Role {args[0]} updated")
    return 0


def role_revoke_permission(ctx: Context) -> int:
    args = ctx.args
    if len(args) < 2:
        raise CtlError(
            EXIT_BAD_ARGS,
            "role revoke-permission command requires role name and key [endkey] as its argument",
        )
    key, end = _perm_range(ctx, args[1:])
    body: JsonDict = {"role": args[0], "key": b64(key)}
    if end:
        body["range_end"] = b64(end)
    printer = ctx.printer
    resp = ctx.call("RoleRevokePermission", body)
    shown_key, shown_end = args[1], end.decode("utf-8", "surrogateescape")
    if not end:
        text = f"Permission of key {shown_key} is revoked from role {args[0]}"
    elif end != b"\x00":
        text = f"Permission of range [{shown_key}, {shown_end}) is revoked from role {args[0]}"
    else:
        text = f"Permission of range [{shown_key}, <open ended> is revoked from role {args[0]}"
    printer.auth_reply("AuthRoleRevokePermissionResponse", resp, text)
    return 0
