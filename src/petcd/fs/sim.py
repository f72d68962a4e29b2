"""An in-memory FileSystem that can crash: the disk of the deterministic tests.

Model
-----
Every file is an inode with two images: `data`, what reads see now, and `durable`, what the
disk is known to hold after the last `fdatasync`/`fsync`. Between the two sits the list of
operations done since that sync (writes, truncations, preallocations). Directories likewise keep
their current entries, their durable entries (as of the last `fsync_dir`) and the creates,
renames and removes done since.

`crash(rng)` is a power cut. For every inode it starts from `durable` and replays the pending
operations, each one kept, dropped or - for writes - torn: the write is split at 512-byte sector
boundaries of the file and every sector is kept or dropped on its own (a sector is the unit a
disk writes atomically, which is what the WAL's torn-write detection relies on). A dropped write
leaves the old bytes, which for the WAL's preallocated space are zeros. For every directory a
random prefix of the pending entry changes survives (journaling file systems keep metadata
operations in order). Everything is drawn from the `random.Random` the test passes, so a seed
reproduces the crash exactly. After the crash, open handles and locks are gone, as after a
reboot; `data == durable` everywhere.

Crash points
------------
Every mutating call (create, write, truncate, preallocate, fdatasync, fsync, rename, remove,
fsync_dir) is one numbered operation. With `crash_at = k`, operation k raises `SimCrash` before
it takes effect, and every later call raises too (the process is dead) until `crash()`. A test
runs a workload once to count the operations, then again crashing at each k in turn.

Simplification: directories themselves (`make_dirs`) are durable at once; petcd creates them
once at startup and etcd does not fsync their parents either.
"""

from __future__ import annotations

import posixpath
import random
from dataclasses import dataclass, field

from petcd.fs import LockedError

SECTOR_BYTES = 512


class SimCrash(Exception):
    """The simulated machine lost power at this operation."""


@dataclass(slots=True)
class _Write:
    offset: int
    data: bytes


@dataclass(slots=True)
class _Resize:
    size: int


@dataclass(slots=True)
class _Inode:
    data: bytearray = field(default_factory=bytearray)
    durable: bytearray = field(default_factory=bytearray)
    pending: list[_Write | _Resize] = field(default_factory=list)


@dataclass(slots=True)
class _Link:
    name: str
    inode: _Inode


@dataclass(slots=True)
class _Unlink:
    name: str


@dataclass(slots=True)
class _Dir:
    entries: dict[str, _Inode] = field(default_factory=dict)
    durable: dict[str, _Inode] = field(default_factory=dict)
    # A rename is one atomic step: (unlink src, link dst) survive together or not at all.
    pending: list[tuple[_Link | _Unlink, ...]] = field(default_factory=list)


def _norm(path: str) -> str:
    return posixpath.normpath(posixpath.join("/", path))


def _resize(buf: bytearray, size: int) -> None:
    if size < len(buf):
        del buf[size:]
    else:
        buf.extend(bytes(size - len(buf)))


def _put(buf: bytearray, offset: int, data: bytes) -> None:
    if offset > len(buf):
        buf.extend(bytes(offset - len(buf)))
    buf[offset : offset + len(data)] = data


class SimFile:
    __slots__ = ("_fs", "_generation", "_inode", "_path")

    def __init__(self, fs: SimFileSystem, path: str, inode: _Inode) -> None:
        self._fs = fs
        self._path = path
        self._inode = inode
        self._generation = fs.generation

    @property
    def path(self) -> str:
        return self._path

    def _check(self) -> _Inode:
        if self._generation != self._fs.generation:
            raise SimCrash(f"{self._path}: handle from before a crash")
        return self._inode

    def size(self) -> int:
        return len(self._check().data)

    def pread(self, offset: int, n: int) -> bytes:
        return bytes(self._check().data[offset : offset + n])

    def pwrite(self, offset: int, data: bytes) -> None:
        inode = self._check()
        self._fs.step("write", self._path)
        data = bytes(data)
        _put(inode.data, offset, data)
        inode.pending.append(_Write(offset, data))

    def truncate(self, size: int) -> None:
        inode = self._check()
        self._fs.step("truncate", self._path)
        _resize(inode.data, size)
        inode.pending.append(_Resize(size))

    def preallocate(self, size: int) -> None:
        inode = self._check()
        self._fs.step("preallocate", self._path)
        if size > len(inode.data):
            _resize(inode.data, size)
            inode.pending.append(_Resize(size))

    def fdatasync(self) -> None:
        self._sync("fdatasync")

    def fsync(self) -> None:
        self._sync("fsync")

    def _sync(self, kind: str) -> None:
        inode = self._check()
        self._fs.step(kind, self._path)
        # Replaying the pending operations costs what was written, not the (preallocated) size.
        for op in inode.pending:
            if isinstance(op, _Write):
                _put(inode.durable, op.offset, op.data)
            else:
                _resize(inode.durable, op.size)
        inode.pending.clear()

    def close(self) -> None:
        # Closing makes nothing durable (as on a real disk); a stale handle may be closed freely.
        pass


class SimLock:
    __slots__ = ("_fs", "_generation", "path")

    def __init__(self, fs: SimFileSystem, path: str) -> None:
        self._fs = fs
        self.path = path
        self._generation = fs.generation

    def release(self) -> None:
        if self._generation == self._fs.generation:
            self._fs.locks.discard(self.path)


class SimFileSystem:
    """In-memory file system with durable/unsynced state and deterministic crashes."""

    def __init__(self) -> None:
        self.dirs: dict[str, _Dir] = {"/": _Dir()}
        self.locks: set[str] = set()
        # Bumped at every crash: handles and locks of an older generation are dead.
        self.generation = 0
        self.ops = 0
        self.crash_at: int | None = None
        self.dead = False
        # (kind, path) of every numbered operation since the last crash, for test messages.
        self.op_log: list[tuple[str, str]] = []

    # --- crash machinery ------------------------------------------------------------------

    def step(self, kind: str, path: str) -> None:
        """Count one mutating operation; raise SimCrash if this is the crash point."""
        if self.dead:
            raise SimCrash("the machine is down")
        if self.crash_at is not None and self.ops >= self.crash_at:
            self.dead = True
            raise SimCrash(f"crash at operation {self.ops} ({kind} {path})")
        self.ops += 1
        self.op_log.append((kind, path))

    def crash(self, rng: random.Random) -> None:
        """Power cut: keep what was synced, keep, drop or tear the rest; then reboot."""
        for d in self.dirs.values():
            for inode in {id(i): i for i in (*d.entries.values(), *d.durable.values())}.values():
                if inode.pending:
                    self._crash_inode(inode, rng)
            survivors = d.pending[: rng.randint(0, len(d.pending))]
            for step in survivors:
                for change in step:
                    if isinstance(change, _Link):
                        d.durable[change.name] = change.inode
                    else:
                        d.durable.pop(change.name, None)
            d.entries = dict(d.durable)
            d.pending.clear()
        self.locks.clear()
        self.generation += 1
        self.dead = False
        self.crash_at = None
        self.op_log.clear()

    @staticmethod
    def _crash_inode(inode: _Inode, rng: random.Random) -> None:
        image = bytearray(inode.durable)
        for op in inode.pending:
            if isinstance(op, _Resize):
                if rng.random() < 0.5:
                    _resize(image, op.size)
                continue
            mode = rng.random()
            if mode < 1 / 3:
                _put(image, op.offset, op.data)
            elif mode < 2 / 3:
                pass
            else:
                start = op.offset
                end = op.offset + len(op.data)
                while start < end:
                    sector_end = min(end, (start // SECTOR_BYTES + 1) * SECTOR_BYTES)
                    if rng.random() < 0.5:
                        _put(image, start, op.data[start - op.offset : sector_end - op.offset])
                    start = sector_end
        inode.data = image
        inode.durable = bytearray(image)
        inode.pending.clear()

    # --- test helpers ---------------------------------------------------------------------

    def flip_bit(self, path: str, bit: int) -> None:
        """Bit rot: flip one bit of a file, in what is read now and in what is durable."""
        inode = self._lookup(path)
        for buf in (inode.data, inode.durable):
            if bit // 8 < len(buf):
                buf[bit // 8] ^= 1 << (bit % 8)

    def durable_bytes(self, path: str) -> bytes:
        return bytes(self._lookup(path).durable)

    # --- FileSystem -----------------------------------------------------------------------

    def _parent(self, path: str) -> tuple[_Dir, str]:
        path = _norm(path)
        head, name = posixpath.split(path)
        d = self.dirs.get(head)
        if d is None:
            raise FileNotFoundError(f"no such directory: {head}")
        return d, name

    def _lookup(self, path: str) -> _Inode:
        d, name = self._parent(path)
        inode = d.entries.get(name)
        if inode is None:
            raise FileNotFoundError(f"no such file: {path}")
        return inode

    def open(self, path: str, *, create: bool = False) -> SimFile:
        if self.dead:
            raise SimCrash("the machine is down")
        d, name = self._parent(path)
        if _norm(path) in self.dirs:
            raise IsADirectoryError(path)
        inode = d.entries.get(name)
        if inode is None:
            if not create:
                raise FileNotFoundError(f"no such file: {path}")
            self.step("create", path)
            inode = _Inode()
            d.entries[name] = inode
            d.pending.append((_Link(name, inode),))
        return SimFile(self, _norm(path), inode)

    def read_file(self, path: str) -> bytes:
        return bytes(self._lookup(path).data)

    def list_dir(self, path: str) -> list[str]:
        path = _norm(path)
        d = self.dirs.get(path)
        if d is None:
            raise FileNotFoundError(f"no such directory: {path}")
        subdirs = [posixpath.basename(p) for p in self.dirs if p != path and posixpath.dirname(p) == path]
        return sorted([*d.entries, *subdirs])

    def exists(self, path: str) -> bool:
        path = _norm(path)
        if path in self.dirs:
            return True
        head, name = posixpath.split(path)
        d = self.dirs.get(head)
        return d is not None and name in d.entries

    def is_dir(self, path: str) -> bool:
        return _norm(path) in self.dirs

    def make_dirs(self, path: str) -> None:
        path = _norm(path)
        while path not in self.dirs:
            head, name = posixpath.split(path)
            parent = self.dirs.get(head)
            if parent is not None and name in parent.entries:
                raise FileExistsError(f"{path} is a file")
            self.dirs[path] = _Dir()
            path = head

    def remove(self, path: str) -> None:
        d, name = self._parent(path)
        if name not in d.entries:
            raise FileNotFoundError(f"no such file: {path}")
        self.step("remove", path)
        del d.entries[name]
        d.pending.append((_Unlink(name),))

    def rename(self, src: str, dst: str) -> None:
        d, src_name = self._parent(src)
        d2, dst_name = self._parent(dst)
        if d is not d2:
            raise ValueError(f"rename across directories: {src} -> {dst}")
        inode = d.entries.get(src_name)
        if inode is None:
            raise FileNotFoundError(f"no such file: {src}")
        self.step("rename", f"{src} -> {dst}")
        del d.entries[src_name]
        d.entries[dst_name] = inode
        d.pending.append((_Unlink(src_name), _Link(dst_name, inode)))

    def fsync_dir(self, path: str) -> None:
        path = _norm(path)
        d = self.dirs.get(path)
        if d is None:
            raise FileNotFoundError(f"no such directory: {path}")
        self.step("fsync_dir", path)
        d.durable = dict(d.entries)
        d.pending.clear()

    def try_lock(self, path: str) -> SimLock:
        if self.dead:
            raise SimCrash("the machine is down")
        path = _norm(path)
        if not self.exists(path):
            raise FileNotFoundError(f"no such file or directory: {path}")
        if path in self.locks:
            raise LockedError(f"{path} is locked by another process")
        self.locks.add(path)
        return SimLock(self, path)
