# petcd developer targets. `make test` and `make run` work on a fresh machine: they create .venv,
# install the package with its dev tools, and (as root, via apt-get) the reference etcd used by the
# differential tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup system-deps run sim test lint bench bench-compare bench-memory sim-sweep robustness proto clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

system-deps:
	sh scripts/system-deps.sh

# A single-member petcd on localhost:2379 (clients) and localhost:2380 (peers), data in ./default.etcd,
# exactly as plain `etcd` starts. Ctrl-C stops it.
run: setup
	$(VENV)/bin/etcd

# A 3-member raft cluster in the deterministic simulator, printing its event log.
sim: setup
	$(PY) -m petcd.sim --seed 1

lint: setup
	$(VENV)/bin/ruff check src tests scripts benchmarks
	$(VENV)/bin/ruff format --check src tests scripts benchmarks
	$(VENV)/bin/mypy

test: setup system-deps lint
	$(PY) -m pytest

# Every benchmark, each bounded in time; figures go to the README by hand, never into test assertions.
bench: setup system-deps
	$(PY) benchmarks/raft_throughput.py
	$(PY) benchmarks/wal_throughput.py
	$(PY) benchmarks/mvcc_throughput.py
	$(PY) benchmarks/watch_fanout.py
	@if [ -f benchmarks/etcdctl_startup.py ]; then $(PY) benchmarks/etcdctl_startup.py; fi

# petcd next to the reference etcd (1 and 3 members on this machine, same flags, same run): a table of
# petcd/etcd ratios (scripts/bench_compare.py). BENCH_COMPARE_FLAGS=--quick for a one-minute smoke run.
bench-compare: setup system-deps
	$(PY) scripts/bench_compare.py $(BENCH_COMPARE_FLAGS)

# RSS (anon/file split, PSS) of etcd and petcd after 1M keys of 256 bytes, and the 1000-watcher
# events/s (scripts/bench_memory.py; a quarter of an hour or more on 2 cores).
# BENCH_MEMORY_FLAGS="--keys 100000" for a shorter run.
bench-memory: setup system-deps
	$(PY) scripts/bench_memory.py --watch --repeat 3 --mappings 6 $(BENCH_MEMORY_FLAGS)

# The long simulator sweep (opt-in; CI runs the fixed corpus inside `make test`).
sim-sweep: setup
	$(PY) -m petcd.sim --seeds 1-5000

# The long robustness sweep (opt-in; CI runs a short one inside `make test`): every traffic
# profile under every fault, one run each, ROBUSTNESS_DURATION of traffic per run; failing runs
# keep their report directory under ROBUSTNESS_REPORTS.
ROBUSTNESS_DURATION ?= 60s
ROBUSTNESS_ROUNDS ?= 1
ROBUSTNESS_SEED ?= 1
ROBUSTNESS_REPORTS ?= /tmp/petcd-robustness
robustness: setup
	$(PY) -m petcd.robustness --profile all --faults all --each-fault --seed $(ROBUSTNESS_SEED) \
		--seeds $(ROBUSTNESS_ROUNDS) --duration $(ROBUSTNESS_DURATION) --report-dir $(ROBUSTNESS_REPORTS)

proto: setup
	$(PY) scripts/gen_proto.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
