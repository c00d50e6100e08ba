# Everything a developer or CI needs, from a machine with only Python, pip and apt.
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 180
K8S_CONTROL_PLANE ?= ../shared/k8s/control-plane

.PHONY: setup prometheus redis postgresql chromium etcd nodejs demo test check lint bench deploy worker reference monitoring clean

setup: $(VENV)/.installed prometheus redis postgresql chromium etcd node/node_modules/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# $(call from-debian,CHECK,PACKAGE): install PACKAGE from Debian unless the shell test CHECK passes.
define from-debian
	@$(1) >/dev/null 2>&1 || { \
	  echo "installing $(2) from Debian"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(2) >/dev/null; }
endef

prometheus:
	$(call from-debian,command -v prometheus,prometheus)

# Redis is only a stand-in for the cache-invalidation tests; the sandbox does not need it.
redis:
	$(call from-debian,command -v redis-server,redis-server)

# PostgreSQL holds the Prefect server's database in the tests that run many flows at once.
postgresql:
	$(call from-debian,ls /usr/lib/postgresql/*/bin/initdb,postgresql)

# Chromium is the browser the UI tests drive through Playwright.
chromium:
	$(call from-debian,command -v chromium,chromium)

# etcd backs the real Kubernetes control plane of ../shared/k8s, where that folder exists.
etcd:
	$(call from-debian,[ ! -e $(K8S_CONTROL_PLANE) ] || command -v etcd,etcd-server)

# Node runs the Unleash server of the flag-provider tests and the TypeScript SDKs' proof.
nodejs:
	$(call from-debian,command -v npm,nodejs npm)

node/node_modules/.installed: node/package-lock.json | nodejs
	cd node && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

demo: $(VENV)/.installed prometheus
	$(VENV)/bin/rollout demo

# Three workers on two cores: most tests wait on rollout windows, not the CPU. Each module stays on
# one worker, the drills and the operator stack's modules first (see tests/conftest.py).
TEST_WORKERS ?= 3

test: setup lint
	$(PY) -m pytest -n $(TEST_WORKERS) --no-loadscope-reorder

# The fast lane: lint, types and the tests that need no server (tests/unit), in under a minute.
check: lint
	$(PY) -m pytest -q tests/unit --durations=5

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Register every deployment of prefect.yaml on the server in PREFECT_API_URL, after checking them
# all: a bad schedule or a missing plan stops here, before anything is registered.
# (`prefect deploy --all` of Prefect 3.8.8 registers the first deployment, then stops on a 422
# from its own check for online workers, so `rollout deploy` registers them through the
# Python API instead.)
deploy: $(VENV)/.installed
	$(VENV)/bin/rollout deployments prefect.yaml
	# A worker started first may have made the pool meanwhile: then it is there, and that is enough.
	$(VENV)/bin/prefect work-pool inspect rollout-local >/dev/null 2>&1 || \
	  $(VENV)/bin/prefect work-pool create rollout-local --type process || \
	  $(VENV)/bin/prefect work-pool inspect rollout-local >/dev/null
	$(VENV)/bin/rollout deploy prefect.yaml

# A process worker for the deployments: each run is taken to this checkout (ROLLOUT_HOME).
worker: $(VENV)/.installed
	ROLLOUT_HOME=$(CURDIR) $(VENV)/bin/prefect worker start --pool rollout-local

# Benchmarks print their figures; the last line of each is name=value pairs. See docs/benchmarks.md.
bench: setup
	$(PY) bench/time_to_safety.py
	$(PY) bench/backup.py
	$(PY) bench/preflight.py
	$(PY) bench/overhead.py
	$(PY) bench/bucketing.py
	$(PY) bench/durability.py
	$(PY) bench/data_gates.py
	$(PY) bench/flag_providers.py

# Regenerate the README's plan reference from the plan model.
reference: $(VENV)/.installed
	$(PY) -c "import re, pathlib; from rollout.plan.reference import plan_reference as r; \
	p = pathlib.Path('README.md'); s = p.read_text(); \
	p.write_text(re.sub(r'(<!-- plan-reference:start -->\n).*(<!-- plan-reference:end -->)', \
	lambda m: m.group(1) + r() + m.group(2), s, flags=re.S))"

# Regenerate the shipped alert rules and dashboard from the Unified Orders plan.
monitoring: $(VENV)/.installed
	$(VENV)/bin/rollout alerts deployments/plans/unified-orders.yaml > deployments/monitoring/unified-orders.rules.yml
	$(VENV)/bin/rollout dashboard deployments/plans/unified-orders.yaml > deployments/monitoring/unified-orders.dashboard.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
