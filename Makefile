# medinfra: the two commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
STAMPS := .cache/stamps
PYTHON ?= python3
INVENTORY ?= inventories/lab

.PHONY: demo test test-unit test-integration lint deps apt venv lab-up lab-down scale-bench hardening-bench audit-bench \
	report-bench sla-bench lynis-bench collector-bench topology-bench lab-bench converge-bench turn-bench mutation clean ee \
	seeded-bugs

DEMO_KEY := .cache/demo-keys/audit
# `medinfra lab up` writes the lab's secrets vault-encrypted, with this password file.
LAB_VAULT := --vault-password-file $(INVENTORY)/.lab/vault-password

## Bring up the lab hospital as podman containers, converge it (hardening, segmentation, site CA,
## monitoring), report Prometheus' targets, prove the zone matrix with real packets, run one failover drill of the
## HIS database pair (its RTO and RPO beside the declared ones, signed evidence in reports-drill/), audit it, write the
## signed report set into reports/ (HTML en/zh, OSCAL, JUnit, CSV, findings, each control's runbook linked into the
## knowledge base) and verify the signature; build the site handbook into kb/, this month's signed SLA report into
## reports-sla/, say who is on call now and what team the site needs.
demo: deps
	medinfra lab up -i $(INVENTORY)
	[ -f $(DEMO_KEY).key ] || medinfra keys generate --out $(DEMO_KEY)
	rc=0; ansible-playbook -i $(INVENTORY) $(LAB_VAULT) playbooks/site.yml || rc=$$?; \
	  medinfra lab status -i $(INVENTORY) || rc=$$(( rc ? rc : 1 )); \
	  ansible-playbook -i $(INVENTORY) $(LAB_VAULT) playbooks/monitoring_status.yml || rc=$$(( rc ? rc : 1 )); \
	  medinfra segmentation verify -i $(INVENTORY) || rc=$$(( rc ? rc : 1 )); \
	  medinfra drill failover his-db -i $(INVENTORY) $(LAB_VAULT) --sign $(DEMO_KEY).key --evidence reports-drill \
	    || rc=$$(( rc ? rc : 1 )); \
	  audit=0; medinfra audit -i $(INVENTORY) -o reports --sign $(DEMO_KEY).key --kb-url file://$(CURDIR)/kb/ \
	    $(if $(wildcard $(INVENTORY)/waivers.yml),--waivers $(INVENTORY)/waivers.yml) || audit=$$?; \
	  [ $$audit -le 1 ] || rc=$$(( rc ? rc : audit )); \
	  medinfra verify reports --pubkey $(DEMO_KEY).pub || rc=$$(( rc ? rc : 1 )); \
	  medinfra kb build -i $(INVENTORY) -o kb $(LAB_VAULT) || rc=$$(( rc ? rc : 1 )); \
	  sla=0; rm -rf reports-sla; medinfra sla report -i $(INVENTORY) $(LAB_VAULT) --month $$(date +%Y-%m) -o reports-sla \
	    --sign $(DEMO_KEY).key || sla=$$?; [ $$sla -le 1 ] || rc=$$(( rc ? rc : sla )); \
	  medinfra oncall who -i $(INVENTORY) || rc=$$(( rc ? rc : 1 )); \
	  medinfra plan team -i $(INVENTORY) || rc=$$(( rc ? rc : 1 )); \
	  medinfra fix reports -i $(INVENTORY) $(LAB_VAULT) --pubkey $(DEMO_KEY).pub --poam reports-fix/poam.oscal.json \
	    || rc=$$(( rc ? rc : 1 )); \
	  echo "open reports/report.en.html or reports/report.zh.html; the site handbook: kb/index.html; this month's SLA report: reports-sla/; history: medinfra history, medinfra diff; what stays open: reports-fix/poam.oscal.json"; \
	  exit $$rc

## Every test: lint, unit tests, then integration tests against a real podman lab.
test: deps lint
	pytest --durations=25 tests/unit tests/integration

test-unit: venv
	scripts/test-unit.sh

## Each bug a reviewer once seeded unnoticed, applied alone to a temporary copy of the checkout: the tests named for
## it must fail there (prints caught or SURVIVED per bug; exits 1 if one survives). The checkout is never written.
seeded-bugs: venv
	python scripts/seeded_bugs.py

test-integration: deps
	pytest --durations=25 tests/integration

# The collection artifact `make lint` builds and runs ansible-test sanity on (galaxy.yml holds the version).
COLLECTION_ARTIFACT = .cache/dist/medinfra-hospital-$(shell sed -n 's/^version: *//p' galaxy.yml).tar.gz

lint: venv
	ruff check src plugins tests benchmarks roles scripts
	# ansible-test's pep8 checks the collection's blank lines, which ruff has only as preview rules: the same, seconds sooner.
	ruff check --preview --select E301,E302,E303,E305,E306 plugins
	mypy
	yamllint --strict .
	ansible-lint --offline playbooks roles
	ansible-galaxy collection build --force --output-path .cache/dist
	scripts/ansible-test-sanity.sh $(COLLECTION_ARTIFACT)

deps: apt venv

# Cheap when nothing is missing (one dpkg-query per package), so it always runs.
apt:
	scripts/install-deps.sh

# The checkout is the collection medinfra.hospital; ansible.cfg's collections_path finds it through this link.
COLLECTION_LINK := .cache/collections/ansible_collections/medinfra/hospital

venv: $(STAMPS)/venv $(COLLECTION_LINK)
$(COLLECTION_LINK):
	mkdir -p $(@D)
	ln -sfn ../../../.. $@
$(STAMPS)/venv: pyproject.toml
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@mkdir -p $(STAMPS) && touch $@
# setup.py gives the package galaxy.yml's version: a new version means a new install.
$(STAMPS)/venv: setup.py galaxy.yml

## The execution environment for AWX/AAP and ansible-navigator (execution-environment.yml), on a Debian base image
## built here with debootstrap; prints its tag. Cached by a digest of its inputs: seconds when nothing changed.
ee: deps
	scripts/build-ee.sh

lab-up: deps
	medinfra lab up -i $(INVENTORY)

lab-down: deps
	medinfra lab down -i $(INVENTORY)

## 59 hosts of the example tertiary hospital: prints time to ready and to reach every host.
scale-bench: deps
	python benchmarks/lab_scale.py

## Lynis hardening index of a stock and a hardened container, with converge times.
hardening-bench: deps
	python benchmarks/hardening_index.py

clean:
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache .mypy_cache

## `medinfra lab up` of 100 hosts (cold, then all running) and `lab down`: wall, CPU and the time of each phase.
lab-bench: deps
	python benchmarks/lab_up.py

## Controller CPU per host of site.yml (first converge, re-converge) and the audit on 10, 25 and 50 lab hosts, then
## the projection for 500 and 2,000 hosts: wall time from one controller and AWX/AAP execution nodes for an hour.
converge-bench: deps
	python benchmarks/converge_scale.py

## Audit time for 10, 50 and 100 lab hosts through pyinfra and through Ansible, side by side.
audit-bench: deps
	python benchmarks/audit_speed.py

## Lynis beside medinfra on a hardened and the legacy lab host (the lab up): agreement and the table.
lynis-bench: deps
	python benchmarks/lynis_agreement.py

## TURN relay capacity (the lab up and converged): `medinfra turn loadtest` of 10, 50 and 100 sessions from guest-01,
## over UDP and TLS: allocations/s, sessions held, loss, RTT, jitter, coturn's CPU and memory.
turn-bench: deps
	python benchmarks/turn_capacity.py

## The collector's CPU time on a lab host (the lab up): this checkout beside the one before the effective-state audit.
collector-bench: deps
	python benchmarks/collector_cpu.py

## Every report format for 1,000 hosts x 60 controls of synthetic findings: time and peak memory.
report-bench: venv
	python benchmarks/report_speed.py

## A month of 30 s probe series for the 59 hosts of example-tertiary: the SLA computation and every format, timed.
sla-bench: venv
	python benchmarks/sla_speed.py

## Load and validation time of generated topologies of 1,000 and 10,000 zones (3 hosts, 2 flows per zone).
topology-bench: venv
	python benchmarks/topology_validation.py

## Mutation testing (mutmut) of the pure core, module by module against each module's unit tests: prints per module
## the mutants killed, surviving (with their diffs) and listed as equivalent in tests/mutation/equivalent/MODULE.yml, and the
## score. A figure, not a gate: not part of `make test`. MODULES="checks signing" runs only those.
mutation: venv
	python scripts/mutation.py $(MODULES)
