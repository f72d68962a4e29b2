"""member, endpoint, alarm, defrag, snapshot save and move-leader: the cluster-facing commands.

Per-endpoint commands (endpoint status/hashkv/health, defrag) address each endpoint on its own
and report failures per endpoint, as etcdctl does; ``--cluster`` replaces the endpoint list with
every member's client URLs from MemberList.
"""

from __future__ import annotations

import os
import time

from petcd.cli.etcdctl.context import Context
from petcd.cli.etcdctl.errors import EXIT_BAD_ARGS, EXIT_ERROR, EXIT_INTERRUPTED, CtlError
from petcd.cli.etcdctl.gofmt import go_duration, go_quote, parse_go_int
from petcd.client import Client, ClientError

TYPE_CHECKING = False  # typing is not imported at run time: it costs start-up time
if TYPE_CHECKING:
    from typing import Any

    JsonDict = dict[str, Any]


def _member_id(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "member ID is not provided")
    text = ctx.args[0]
    try:
        return parse_go_int(text, 16, signed=False)
    except ValueError as err:
        raise CtlError(EXIT_BAD_ARGS, f"bad member ID arg ({err}), expecting ID in Hex") from None


def _peer_urls(ctx: Context) -> list[str]:
    urls = str(ctx.flag("peer-urls"))
    if not urls:
        raise CtlError(EXIT_BAD_ARGS, "member peer urls not provided")
    return urls.split(",")


def member_add(ctx: Context) -> int:
    if not ctx.args:
        raise CtlError(EXIT_BAD_ARGS, "member name not provided")
    if len(ctx.args) > 1:
        msg = "too many arguments"
        for s in ctx.args:
            if s.lower().startswith("http"):
                msg += f", did you mean --peer-urls={s}"
        raise CtlError(EXIT_BAD_ARGS, msg)
    name = ctx.args[0]
    urls = _peer_urls(ctx)
    learner = bool(ctx.flag("learner"))
    body: JsonDict = {"peerURLs": urls}
    if learner:
        body["isLearner"] = True
    printer = ctx.printer
    resp = ctx.call("MemberAdd", body)
    printer.member_add(resp, learner)
    if printer.fmt == "simple":
        new_id = resp.get("member", {}).get("ID")
        conf: list[str] = []
        for m in resp.get("members", []):
            n = name if m.get("ID") == new_id else m.get("name", "")
            conf.extend(f"{n}={u}" for u in m.get("peerURLs", []))
        printer.line()
        printer.line(f"ETCD_NAME={go_quote(name)}")
        printer.line(f"ETCD_INITIAL_CLUSTER={go_quote(','.join(conf))}")
        printer.line(f"ETCD_INITIAL_ADVERTISE_PEER_URLS={go_quote(str(ctx.flag('peer-urls')))}")
        printer.line('ETCD_INITIAL_CLUSTER_STATE="existing"')
    return 0


def member_remove(ctx: Context) -> int:
    mid = _member_id(ctx)
    printer = ctx.printer
    resp = ctx.call("MemberRemove", {"ID": str(mid)})
    printer.member_change("removed from", "MemberRemoveResponse", mid, resp)
    return 0


def member_update(ctx: Context) -> int:
    mid = _member_id(ctx)
    urls = _peer_urls(ctx)
    printer = ctx.printer
    resp = ctx.call("MemberUpdate", {"ID": str(mid), "peerURLs": urls})
    printer.member_change("updated in", "MemberUpdateResponse", mid, resp)
    return 0


def member_promote(ctx: Context) -> int:
    mid = _member_id(ctx)
    printer = ctx.printer
    resp = ctx.call("MemberPromote", {"ID": str(mid)})
    printer.member_change("promoted in", "MemberPromoteResponse", mid, resp)
    return 0


def member_list(ctx: Context) -> int:
    consistency = ctx.flag("consistency")
    body: JsonDict = {}
    if consistency == "l":
        body["linearizable"] = True
    elif consistency != "s":
        raise CtlError(EXIT_BAD_ARGS, f"unknown consistency flag {go_quote(consistency)}")
    printer = ctx.printer
    printer.member_list(ctx.call("MemberList", body))
    return 0


# ---- endpoints ---------------------------------------------------------------------------------


def endpoints_from_cluster(ctx: Context) -> list[str]:
    if not ctx.flag("cluster"):
        return list(ctx.endpoints())
    try:
        resp = Client(ctx.client_config(), ctx.client.transport).call("MemberList", {})
    except ClientError as err:
        raise CtlError(
            EXIT_ERROR, f"failed to fetch endpoints from etcd cluster member list: {err.message}"
        ) from None
    return [u for m in resp.get("members", []) for u in m.get("clientURLs", [])]


def _per_endpoint(
    ctx: Context, method: str, body: JsonDict, fail: str
) -> tuple[list[tuple[str, JsonDict]], str]:
    """Call each endpoint; (replies, the last error message or "")."""
    results = []
    failed = ""
    client = ctx.client
    for ep in endpoints_from_cluster(ctx):
        try:
            results.append((ep, client.call(method, body, ctx.endpoint(ep))))
        except ClientError as err:
            failed = err.message
            ctx.err.write(f"{fail} {ep} ({err.message})\n".encode())
        except ValueError as err:
            raise CtlError(EXIT_ERROR, str(err)) from None
    return results, failed


def endpoint_status(ctx: Context) -> int:
    printer = ctx.printer
    results, failed = _per_endpoint(ctx, "Status", {}, "Failed to get the status of endpoint")
    printer.endpoint_status(results)
    return EXIT_ERROR if failed else 0


def endpoint_hashkv(ctx: Context) -> int:
    printer = ctx.printer
    body: JsonDict = {}
    if int(ctx.flag("rev")):
        body["revision"] = str(int(ctx.flag("rev")))
    results, failed = _per_endpoint(ctx, "HashKV", body, "Failed to get the hash of endpoint")
    printer.endpoint_hashkv(results)
    if failed:
        raise CtlError(EXIT_ERROR, failed)
    return 0


def _check_health(ctx: Context, ep: str) -> JsonDict:
    try:
        client = Client(ctx.client_config([ep]), ctx.environ.get("PETCD_ETCDCTL_TRANSPORT", "auto"))
    except ValueError as err:
        return {"endpoint": ep, "health": False, "took": "", "error": str(err)}
    start = time.monotonic_ns()
    health: JsonDict = {"endpoint": ep, "health": False, "took": ""}
    try:
        try:
            client.call("Range", {"key": "aGVhbHRo"})  # "health"
            ok = True
        except ClientError as err:
            ok = err.message == "etcdserver: permission denied"
            if not ok:
                health["error"] = err.message
        health["took"] = go_duration(time.monotonic_ns() - start)
        if ok:
            try:
                alarms = client.call("Alarm", {"action": 0}).get("alarms", [])
            except ClientError:
                health["error"] = "Unable to fetch the alarm list"
            else:
                if alarms:
                    names = "".join(
                        (a.get("alarm") if a.get("alarm") in ("NOSPACE", "CORRUPT") else "UNKNOWN") + " "
                        for a in alarms
                    )
                    health["error"] = "Active Alarm(s): " + names
                else:
                    health["health"] = True
    finally:
        client.close()
    return health


def endpoint_health(ctx: Context) -> int:
    printer = ctx.printer
    eps = endpoints_from_cluster(ctx)
    if len(eps) == 1:
        results = [_check_health(ctx, eps[0])]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(eps)) as pool:
            results = list(pool.map(lambda ep: _check_health(ctx, ep), eps))
    printer.endpoint_health(results, ctx.err)
    if any(r.get("error") for r in results):
        raise CtlError(EXIT_ERROR, "unhealthy cluster")
    return 0


# ---- maintenance -------------------------------------------------------------------------------


def alarm_list(ctx: Context) -> int:
    if ctx.args:
        raise CtlError(EXIT_BAD_ARGS, "alarm list command accepts no arguments")
    printer = ctx.printer
    printer.alarm(ctx.call("Alarm", {"action": 0}))
    return 0


def alarm_disarm(ctx: Context) -> int:
    if ctx.args:
        raise CtlError(EXIT_BAD_ARGS, "alarm disarm command accepts no arguments")
    printer = ctx.printer
    # clientv3 AlarmDisarm with an empty member: list the alarms, then disarm each one
    # (the response it builds carries no header: json prints {} when there was nothing to disarm)
    alarms = ctx.call("Alarm", {"action": 0})
    resp: JsonDict = {}
    disarmed: list[JsonDict] = []
    for a in alarms.get("alarms", []):
        r = ctx.call("Alarm", {"action": 2, "memberID": a.get("memberID", "0"), "alarm": a.get("alarm", 0)})
        disarmed.extend(r.get("alarms", []))
    if disarmed:
        resp["alarms"] = disarmed
    printer.alarm(resp)
    return 0


def defrag(ctx: Context) -> int:
    failures = 0
    client = ctx.client
    for ep in endpoints_from_cluster(ctx):
        start = time.monotonic_ns()
        try:
            client.call("Defragment", {}, ctx.endpoint(ep))
        except ClientError as err:
            took = go_duration(time.monotonic_ns() - start)
            ctx.err.write(f"Failed to defragment etcd member[{ep}]. took {took}. ({err.message})\n".encode())
            failures += 1
        else:
            took = go_duration(time.monotonic_ns() - start)
            ctx.printer.line(f"Finished defragmenting etcd member[{ep}]. took {took}")
    return EXIT_ERROR if failures else 0


def snapshot_save(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "snapshot save expects one argument <filename>")
    if len(ctx.endpoints()) != 1:
        raise CtlError(
            EXIT_INTERRUPTED,
            f"snapshot must be requested to one selected node, not multiple [{' '.join(ctx.endpoints())}]",
        )
    path = ctx.args[0]
    part = path + ".part"
    from petcd.pb.etcdserverpb import rpc_pb2

    timeout = float(ctx.flag("command-timeout")) if "command-timeout" in ctx.changed else None
    try:
        stream = ctx.client.grpc.server_stream("Snapshot", rpc_pb2.SnapshotRequest(), timeout)
        with open(part, "wb") as f:
            for chunk in stream:
                f.write(chunk.blob)  # type: ignore[attr-defined]
            f.flush()
            os.fsync(f.fileno())
    except ClientError as err:
        _remove(part)
        raise CtlError(EXIT_INTERRUPTED, err.message) from None
    except OSError as err:
        _remove(part)
        raise CtlError(EXIT_INTERRUPTED, str(err)) from None
    os.replace(part, path)
    ctx.printer.line(f"Snapshot saved at {path}")
    return 0


def _remove(path: str) -> None:
    try:  # noqa: SIM105
        os.remove(path)
    except OSError:
        pass


def move_leader(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "move-leader command needs 1 argument")
    text = ctx.args[0]
    try:
        target = parse_go_int(text, 16, signed=False)
    except ValueError as err:
        raise CtlError(EXIT_BAD_ARGS, str(err)) from None
    printer = ctx.printer
    client = ctx.client
    eps = list(ctx.endpoints())
    for ep in eps:
        endpoint = ctx.endpoint(ep)
        try:
            status = client.call("Status", {}, endpoint)
        except ClientError as err:
            raise CtlError(EXIT_ERROR, err.message) from None
        leader = int(status.get("leader", 0))
        if int(status.get("header", {}).get("member_id", 0)) == leader:
            try:
                resp = client.call("MoveLeader", {"targetID": str(target)}, endpoint)
            except ClientError as err:
                raise CtlError(EXIT_ERROR, err.message) from None
            printer.move_leader(leader, target, resp)
            return 0
    raise CtlError(EXIT_BAD_ARGS, f"no leader endpoint given at [{' '.join(eps)}]")


# ---- downgrade (etcd 3.6) ----------------------------------------------------------------------

_DOWNGRADE_ACTIONS = {"validate": 0, "enable": 1, "cancel": 2}


def _downgrade(ctx: Context, action: str) -> int:
    body: JsonDict = {"action": _DOWNGRADE_ACTIONS[action]}
    if action != "cancel":
        if not ctx.args:
            raise CtlError(EXIT_BAD_ARGS, "TARGET_VERSION not provided")
        if len(ctx.args) > 1:
            raise CtlError(EXIT_BAD_ARGS, "too many arguments")
        if not ctx.args[0]:
            raise CtlError(EXIT_BAD_ARGS, "target version not provided")
        body["version"] = ctx.args[0]
    elif ctx.args:
        raise CtlError(EXIT_BAD_ARGS, "too many arguments")
    printer = ctx.printer
    printer.downgrade(action, ctx.call("Downgrade", body))
    return 0


def downgrade_validate(ctx: Context) -> int:
    return _downgrade(ctx, "validate")


def downgrade_enable(ctx: Context) -> int:
    return _downgrade(ctx, "enable")


def downgrade_cancel(ctx: Context) -> int:
    return _downgrade(ctx, "cancel")
