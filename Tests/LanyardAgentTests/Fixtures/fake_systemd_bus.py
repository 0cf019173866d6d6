#!/usr/bin/env python3
"""Stands in for systemd on a private D-Bus bus, for the helper's reload_unit test and the systemd attestor's tests.

Usage: fake_systemd_bus.py BUS_ADDRESS LOG_FILE UNIT[,UNIT...]

Owns org.freedesktop.systemd1 and answers, on org.freedesktop.systemd1.Manager:
- ReloadUnit(name, mode): a known UNIT is recorded in LOG_FILE as "<name> <mode>" and gets a job path; another gets
  systemd's NoSuchUnit error.
- GetUnitByPID(pid): like systemd, from the process's cgroup (the unified hierarchy's "0::" line): the first path
  segment after the slices that names a unit. The unit's object carries org.freedesktop.systemd1.Unit's Id and
  FragmentPath (/etc/systemd/system/<name, or its template>; none for scopes) and its type interface's Slice (the
  segment above it). A process in no unit gets systemd's NoUnitForPID error.
Prints "ready" once the name is owned.
"""
import asyncio
import sys

from dbus_next.aio import MessageBus
from dbus_next.constants import PropertyAccess
from dbus_next.errors import DBusError
from dbus_next.service import ServiceInterface, dbus_property, method

UNIT_TYPES = {"service": "Service", "scope": "Scope", "socket": "Socket", "mount": "Mount", "swap": "Swap"}


def unit_in_path(path):
    """(unit, slice) of a cgroup path as systemd reads it, or None."""
    parent = "-.slice"
    for segment in [s for s in path.split("/") if s]:
        if segment.endswith(".slice"):
            parent = segment
            continue
        kind = segment.rsplit(".", 1)[-1] if "." in segment else ""
        return (segment, parent) if kind in UNIT_TYPES else None
    return None


def object_path(unit):
    escaped = "".join(c if c.isalnum() else "_%02x" % ord(c) for c in unit)
    return "/org/freedesktop/systemd1/unit/" + escaped


class Unit(ServiceInterface):
    def __init__(self, unit, fragment):
        super().__init__("org.freedesktop.systemd1.Unit")
        self.unit = unit
        self.fragment = fragment

    @dbus_property(access=PropertyAccess.READ)
    def Id(self) -> "s":  # noqa: F821 (D-Bus signatures)
        return self.unit

    @dbus_property(access=PropertyAccess.READ)
    def FragmentPath(self) -> "s":  # noqa: F821
        return self.fragment


class TypedUnit(ServiceInterface):
    def __init__(self, kind, slice_name):
        super().__init__("org.freedesktop.systemd1." + UNIT_TYPES[kind])
        self.slice_name = slice_name

    @dbus_property(access=PropertyAccess.READ)
    def Slice(self) -> "s":  # noqa: F821
        return self.slice_name


class Manager(ServiceInterface):
    def __init__(self, bus, log, units):
        super().__init__("org.freedesktop.systemd1.Manager")
        self.bus = bus
        self.log = log
        self.units = units
        self.jobs = 0
        self.exported = set()

    @method()
    def ReloadUnit(self, name: "s", mode: "s") -> "o":  # noqa: F821
        if name not in self.units:
            raise DBusError("org.freedesktop.systemd1.NoSuchUnit", f"Unit {name} not found.")
        with open(self.log, "a") as log:
            log.write(f"{name} {mode}\n")
        self.jobs += 1
        return f"/org/freedesktop/systemd1/job/{self.jobs}"

    @method()
    def GetUnitByPID(self, pid: "u") -> "o":  # noqa: F821
        try:
            with open(f"/proc/{pid}/cgroup") as cgroup:
                lines = cgroup.read().splitlines()
        except OSError:
            raise DBusError("org.freedesktop.systemd1.NoSuchProcess", f"PID {pid} does not exist.")
        path = next((line.split(":", 2)[2] for line in lines if line.startswith("0::")), "/")
        found = unit_in_path(path)
        if found is None:
            raise DBusError("org.freedesktop.systemd1.NoUnitForPID", f"PID {pid} does not belong to any loaded unit.")
        unit, slice_name = found
        kind = unit.rsplit(".", 1)[1]
        if unit not in self.exported:
            template = unit.split("@", 1)[0] + "@." + kind if "@" in unit else unit
            fragment = "" if kind == "scope" else "/etc/systemd/system/" + template
            self.bus.export(object_path(unit), Unit(unit, fragment))
            self.bus.export(object_path(unit), TypedUnit(kind, slice_name))
            self.exported.add(unit)
        return object_path(unit)


async def main(address, log, units):
    bus = await MessageBus(bus_address=address).connect()
    bus.export("/org/freedesktop/systemd1", Manager(bus, log, units.split(",")))
    await bus.request_name("org.freedesktop.systemd1")
    print("ready", flush=True)
    await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
