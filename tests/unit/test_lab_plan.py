"""The lab plan: networks, router attachments and routes computed from a topology."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from medinfra.lab.plan import mac_address, plan_lab
from medinfra.lab.prereq import raise_inotify_limits
from medinfra.problems import UserInputError
from medinfra.topology import load_topology
from tests.conftest import LAB_TOPOLOGY, TERTIARY_TOPOLOGY, write_yaml


def test_one_internal_network_per_zone_with_the_controller_on_the_first_address() -> None:
    plan = plan_lab(load_topology(LAB_TOPOLOGY))
    assert [n.zone for n in plan.networks] == ["mgmt", "his", "his-dr", "pacs", "dmz", "clinical", "guest"]
    his = plan.network_for_zone("his")
    assert his.name == "medinfra-lab-his"
    assert his.subnet == IPv4Network("10.231.20.0/24")
    assert his.controller_address == IPv4Address("10.231.20.1")


def test_router_sits_on_every_zone_at_its_gateway() -> None:
    plan = plan_lab(load_topology(LAB_TOPOLOGY))
    router = next(c for c in plan.containers if c.host == "fw")
    assert router.forwards
    assert dict(router.attachments) == {
        "medinfra-lab-mgmt": IPv4Address("10.231.10.254"),
        "medinfra-lab-his": IPv4Address("10.231.20.254"),
        "medinfra-lab-his-dr": IPv4Address("10.231.21.254"),
        "medinfra-lab-pacs": IPv4Address("10.231.30.254"),
        "medinfra-lab-dmz": IPv4Address("10.231.40.254"),
        "medinfra-lab-clinical": IPv4Address("10.231.50.254"),
        "medinfra-lab-guest": IPv4Address("10.231.60.254"),
    }


def test_hosts_route_other_zones_through_their_gateway() -> None:
    plan = plan_lab(load_topology(LAB_TOPOLOGY))
    his_db = next(c for c in plan.containers if c.host == "his-db")
    assert not his_db.forwards
    assert his_db.attachments == (("medinfra-lab-his", IPv4Address("10.231.20.11")),)
    routes = dict(his_db.routes)
    assert IPv4Network("10.231.20.0/24") not in routes
    assert routes[IPv4Network("10.231.30.0/24")] == IPv4Address("10.231.20.254")
    assert routes[IPv4Network("10.231.21.0/24")] == IPv4Address("10.231.20.254")  # its standby's zone, his-dr
    assert len(routes) == 6  # every other zone of the lab


def test_spec_digest_changes_with_image_and_address() -> None:
    plan = plan_lab(load_topology(LAB_TOPOLOGY))
    container = plan.containers[1]
    assert container.spec_digest("a") != container.spec_digest("b")
    assert container.spec_digest("a") != plan.containers[2].spec_digest("a")


def test_tertiary_plans_fifty_nine_containers() -> None:
    plan = plan_lab(load_topology(TERTIARY_TOPOLOGY))
    assert len(plan.containers) == 59
    assert len({c.name for c in plan.containers}) == 59


def test_first_zone_address_is_reserved_for_the_controller(tmp_path: Path, topology_data: dict[str, Any]) -> None:
    topology_data["hosts"][1]["address"] = "10.231.10.1"
    with pytest.raises(UserInputError, match="kept for the lab controller") as caught:
        plan_lab(load_topology(write_yaml(tmp_path / "hospital.yml", topology_data)))
    assert caught.value.problems[0].path == ("hosts", 1, "address")


def test_router_needs_a_gateway_in_every_zone(tmp_path: Path, topology_data: dict[str, Any]) -> None:
    dmz = next(zone for zone in topology_data["zones"] if zone["name"] == "dmz")
    del dmz["gateway"]
    with pytest.raises(UserInputError, match="zone 'dmz' has no gateway"):
        plan_lab(load_topology(write_yaml(tmp_path / "hospital.yml", topology_data)))


def test_inotify_limits_are_raised_only_when_low(tmp_path: Path) -> None:
    (tmp_path / "fs" / "inotify").mkdir(parents=True)
    (tmp_path / "fs/inotify/max_user_instances").write_text("128\n")
    (tmp_path / "fs/inotify/max_user_watches").write_text("1048576\n")
    changes = raise_inotify_limits(tmp_path)
    assert changes == ["raised fs.inotify.max_user_instances from 128 to 8192 (systemd containers need it)"]
    assert (tmp_path / "fs/inotify/max_user_instances").read_text().strip() == "8192"
    assert (tmp_path / "fs/inotify/max_user_watches").read_text().strip() == "1048576"
    assert raise_inotify_limits(tmp_path) == []


def test_mac_addresses_are_stable_and_locally_administered() -> None:
    assert mac_address(IPv4Address("10.231.20.254")) == "02:00:0a:e7:14:fe"
