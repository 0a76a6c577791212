# regops.registry: `make demo` and `make test` are the two commands of the README.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
COLLECTIONS := $(CURDIR)/.tmp/collections
LINK := $(COLLECTIONS)/ansible_collections/regops/registry
DEMO_STATE := $(CURDIR)/.tmp/demo/lab.json
VERSION = $(shell sed -n 's/^version: *//p' galaxy.yml)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_NOCOLOR := 1
export ANSIBLE_FORCE_COLOR := 0
export ANSIBLE_LOCALHOST_WARNING := 0
export ANSIBLE_INVENTORY_UNPARSED_WARNING := 0
export PY_COLORS := 0
# Ansible's scratch files (AnsiballZ payloads, local and "remote" on localhost) stay in the clone too.
export ANSIBLE_LOCAL_TEMP := $(CURDIR)/.tmp/ansible-tmp/local
export ANSIBLE_REMOTE_TEMP := $(CURDIR)/.tmp/ansible-tmp/remote

# System packages (Debian/Ubuntu), each set with the commands that show it is there. The demo needs a registry and
# a Python venv; the tests also need skopeo (an independent client to check results), htpasswd (the lab's Basic
# auth), git and shellcheck (ansible-test sanity), curl (an HTTP/2 client for the lab harness), GNU time (peak
# memory of module runs) and chromium (opens the usage report in a real browser, headless).
DEMO_PACKAGES := docker-registry ca-certificates python3-venv
DEMO_COMMANDS := docker-registry
TEST_PACKAGES := $(DEMO_PACKAGES) skopeo apache2-utils openssl git shellcheck curl time chromium
TEST_COMMANDS := $(DEMO_COMMANDS) skopeo htpasswd openssl git shellcheck curl /usr/bin/time chromium

.PHONY: demo test doc bench reliability changelog docs docs-screenshots galaxy ee sanity-matrix units integration sanity system-deps system-deps-demo venv collection docs-check clean

## demo: start a throwaway registry on 127.0.0.1, seed it, run demo/demo.yml, stop the registry
demo: system-deps-demo venv collection
	$(PY) -m tests.lab up --mode plain --state $(DEMO_STATE)
	trap '$(PY) -m tests.lab down --state $(DEMO_STATE)' EXIT; \
	$(PY) -m tests.lab seed-demo --state $(DEMO_STATE); \
	ANSIBLE_PYTHON_INTERPRETER=$(PY) $(VENV)/bin/ansible-playbook -i localhost, -c local demo/demo.yml \
	  -e demo_state=$(DEMO_STATE)

## test: unit tests, integration tests against real registries, ansible-doc and ansible-test sanity
test: system-deps venv collection units integration docs-check lint sanity

## doc: ansible-doc for one module, plugin or role of this clone: make doc NAME=registry_tags [TYPE=lookup|inventory|filter|role]
doc: venv collection
	@[ -n "$(NAME)" ] || { echo "usage: make doc NAME=registry_tags [TYPE=lookup|inventory|filter|role]" >&2; exit 2; }
	$(VENV)/bin/ansible-doc $(if $(TYPE),-t $(TYPE)) regops.registry.$(NAME)

## bench: benchmarks against skopeo (copy, sync), python-dxf and curl (not tests); writes docs/benchmarks.md
bench: system-deps venv collection
	$(PY) -m pip install -q python-dxf
	$(PY) bench/facts.py
	$(PY) bench/listing.py
	$(PY) bench/upload.py
	$(PY) bench/promote.py
	$(PY) bench/prune.py
	$(PY) bench/task_profile.py
	$(PY) bench/mirror.py
	$(PY) bench/scale.py
	$(PY) bench/report_scale.py
	$(PY) bench/shards.py
	$(PY) bench/usage.py
	$(PY) bench/report.py

# The integration suite on PYTEST_WORKERS pytest-xdist workers (whole files each, handed out as workers get free; 0:
# one process), then the whole-run checks (secret scan, return keys) once every worker has ended: a last pytest with
# the same run id reads what every process recorded (tests/integration/conftest.py, docs/dev/testing.md). Both run
# even when the first fails (rc: not 0 when either did).
PYTEST_WORKERS ?= 2
WHOLE_RUN_TESTS := tests/integration/test_zz_return_keys.py tests/integration/test_zz_secrets.py
INTEGRATION = rc=0; export PYTEST_XDIST_TESTRUNUID=$$(date -u +%Y%m%dT%H%M%S)-$$$$; \
	$(PY) -m pytest tests/integration -n $(PYTEST_WORKERS) --dist loadfile --durations=25 -m "not whole_run" || rc=$$?; \
	$(PY) -m pytest $(WHOLE_RUN_TESTS) -m whole_run || rc=$$?

## reliability: the fault, hostile-input, load and secret-scan tests (all part of `make test`); writes docs/reliability.md
reliability: system-deps venv collection
	start=$$(date +%s); $(INTEGRATION); [ "$$rc" = 0 ]; \
	  $(PY) tests/reliability_report.py $$(( ($$(date +%s) - start + 59) / 60 ))

## changelog: CHANGELOG.md from changelogs/fragments with antsibull-changelog, as the release of galaxy.yml's version
changelog: venv collection
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/antsibull-changelog lint
	date=$$($(PY) -c "import sys, yaml; r = (yaml.safe_load(open('changelogs/changelog.yaml'))['releases'] or {}).get('$(VERSION)') or {}; print(r.get('release_date', ''))"); \
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/antsibull-changelog release --version $(VERSION) --update-existing \
	  $${date:+--date $$date}

## docs: HTML docs site (antsibull-docs: modules, plugins, roles and the docs/*.md guides) in .tmp/docs/build/html
docs: collection
	hacking/docs.sh

## docs-screenshots: headless Chromium screenshots of a module page and of the promotion guide (.tmp/docs/screenshots)
docs-screenshots: docs
	hacking/screenshots.sh

## galaxy: build the collection tarball (.tmp/release/) and run galaxy-importer on it; fails on any error or warning
galaxy:
	hacking/galaxy.sh

## ee: an execution-environment build context (.tmp/ee-context) from meta/execution-environment.yml (ansible-builder)
ee:
	hacking/ee.sh

## sanity-matrix: ansible-test sanity for every ansible-core version requires_ansible claims that installs here
sanity-matrix:
	hacking/sanity-matrix.sh

units: venv collection
	$(PY) -m pytest tests/unit

integration: system-deps venv collection
	$(INTEGRATION); exit $$rc

docs-check: venv collection
	@for m in plugins/modules/*.py; do n=$$(basename $$m .py); \
	  $(VENV)/bin/ansible-doc regops.registry.$$n >/dev/null || { echo "ansible-doc fails for $$n"; exit 1; }; done
	@$(VENV)/bin/ansible-doc -t lookup regops.registry.digest >/dev/null
	@$(VENV)/bin/ansible-doc -t inventory regops.registry.registry >/dev/null
	@for f in plugins/filter/*.yml; do $(VENV)/bin/ansible-doc -t filter regops.registry.$$(basename $$f .yml) >/dev/null || { echo "ansible-doc fails for filter $$f"; exit 1; }; done
	@for r in promote prune mirror; do $(VENV)/bin/ansible-doc -t role regops.registry.$$r >/dev/null; done
	@echo "ansible-doc renders every module and plugin"
	@PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/antsibull-changelog lint && echo "changelog fragments lint clean"

## lint: ansible-lint (production profile) on the roles, the example playbooks and the demo
lint: venv collection
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/ansible-lint --offline roles playbooks demo

sanity: venv
	VENV=$(VENV) hacking/sanity.sh

# apt_install(commands, packages): installs the packages with apt-get when a command or Python's venv is missing.
define apt_install
	@missing=""; for c in $(1); do command -v $$c >/dev/null || missing=1; done; \
	$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || missing=1; \
	if [ -n "$$missing" ]; then \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    $(2) >/dev/null; fi
endef

## system-deps-demo: the system packages `make demo` needs; system-deps: those the tests need (a superset)
system-deps-demo:
	$(call apt_install,$(DEMO_COMMANDS),$(DEMO_PACKAGES))

system-deps:
	$(call apt_install,$(TEST_COMMANDS),$(TEST_PACKAGES))

venv: $(VENV)/.stamp
$(VENV)/.stamp: tests/requirements.txt requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r tests/requirements.txt
	touch $@

collection:
	@mkdir -p $(dir $(LINK)) && ln -sfn $(CURDIR) $(LINK)

clean:
	rm -rf .tmp .venv tests/output
