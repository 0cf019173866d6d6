#!/usr/bin/env python3
"""Stands in for systemd on a private D-Bus bus, for the helper's reload_unit test.

Usage: fake_systemd_bus.py BUS_ADDRESS LOG_FILE UNIT[,UNIT...]

Owns org.freedesktop.systemd1 and answers org.freedesktop.systemd1.Manager.ReloadUnit(name, mode): a known unit is
recorded in LOG_FILE as "<name> <mode>" and gets a job path; another gets systemd's NoSuchUnit error. Prints "ready"
once the name is owned.
"""
import asyncio
import sys

from dbus_next.aio import MessageBus
from dbus_next.errors import DBusError
from dbus_next.service import ServiceInterface, method


class Manager(ServiceInterface):
    def __init__(self, log, units):
        super().__init__("org.freedesktop.systemd1.Manager")
        self.log = log
        self.units = units
        self.jobs = 0

    @method()
    def ReloadUnit(self, name: "s", mode: "s") -> "o":  # noqa: F821 (D-Bus signatures)
        if name not in self.units:
            raise DBusError("org.freedesktop.systemd1.NoSuchUnit", f"Unit {name} not found.")
        with open(self.log, "a") as log:
            log.write(f"{name} {mode}\n")
        self.jobs += 1
        return f"/org/freedesktop/systemd1/job/{self.jobs}"


async def main(address, log, units):
    bus = await MessageBus(bus_address=address).connect()
    bus.export("/org/freedesktop/systemd1", Manager(log, units.split(",")))
    await bus.request_name("org.freedesktop.systemd1")
    print("ready", flush=True)
    await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
