import CSystemd
public import SPIFFE

/// The `systemd` attestor: asks systemd over D-Bus which unit the caller runs in (`GetUnitByPID`, then the unit's
/// `Id`, `FragmentPath` and `Slice`), never trusting names the caller could choose.
///
/// System units give `systemd:id:<unit>`, `systemd:fragment_path:<file>`, `systemd:slice:<slice>`, and for instances
/// of a template `systemd:template:<worker@.service>` and `systemd:instance:<3>`. A process of a user's own manager
/// gets only `systemd:user_unit:<uid>:<unit>` (``SystemdUnit/userUnit(uid:cgroupPaths:)``). A process outside any
/// unit gets nothing. When the bus cannot be reached or does not answer, attestation fails: a caller is never
/// served without selectors it might be entitled to be judged by.
public struct SystemdAttestor: WorkloadAttestor {
    public struct Config: Sendable, Equatable {
        /// The bus to ask (`unix:path=/run/dbus/system_bus_socket`); nil for the system bus.
        public var busAddress: String?
        /// How long one D-Bus call may take.
        public var timeout: Duration
        /// Where `/proc` is; tests point it at a fake tree.
        public var procRoot: String

        public init(busAddress: String? = nil, timeout: Duration = .seconds(5), procRoot: String = "/proc") {
            self.busAddress = busAddress
            self.timeout = timeout
            self.procRoot = procRoot
        }
    }

    public let config: Config
    public var name: String { "systemd" }

    public init(config: Config = Config()) {
        self.config = config
    }

    public func attest(_ process: WorkloadProcess) async throws -> [Selector] {
        guard let unit = try await unit(of: process.pid) else { return [] }
        if let uid = unit.userManagerUID {
            let paths = try ContainerLocator.cgroupPaths(pid: process.pid, procRoot: config.procRoot)
            guard let userUnit = SystemdUnit.userUnit(uid: uid, cgroupPaths: paths) else { return [] }
            return [try selector("user_unit", "\(uid):\(userUnit)")]
        }
        var selectors = [try selector("id", unit.id)]
        if !unit.fragmentPath.isEmpty { selectors.append(try selector("fragment_path", unit.fragmentPath)) }
        if !unit.slice.isEmpty { selectors.append(try selector("slice", unit.slice)) }
        if let (template, instance) = unit.template {
            selectors.append(try selector("template", template))
            selectors.append(try selector("instance", instance))
        }
        return selectors
    }

    /// systemd's answer for `pid`, asked off the cooperative pool (sd-bus calls block); nil when the process belongs
    /// to no unit.
    public func unit(of pid: Int32) async throws(AttestationError) -> SystemdUnit? {
        let config = config
        return try await BlockingCall.run { () throws(AttestationError) in try Self.ask(pid, config) }
    }

    private static func ask(_ pid: Int32, _ config: Config) throws(AttestationError) -> SystemdUnit? {
        var unit = lanyard_systemd_unit()
        var message = [CChar](repeating: 0, count: 512)
        let micros = UInt64(
            max(
                1,
                config.timeout.components.seconds * 1_000_000
                    + config.timeout.components.attoseconds / 1_000_000_000_000
            )
        )
        let result = message.withUnsafeMutableBufferPointer { buffer in
            if let address = config.busAddress {
                return lanyard_systemd_unit_of_pid(
                    address,
                    micros,
                    UInt32(pid),
                    &unit,
                    buffer.baseAddress,
                    buffer.count
                )
            }
            return lanyard_systemd_unit_of_pid(nil, micros, UInt32(pid), &unit, buffer.baseAddress, buffer.count)
        }
        if result == 1 { return nil }
        guard result == 0 else {
            let reason = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw AttestationError(
                .systemdUnavailable,
                "systemd did not say which unit process \(pid) is in: \(reason)"
            )
        }
        let id = Self.string(&unit.id)
        guard SystemdUnit.isUnitName(Substring(id)) || id.hasSuffix(".slice") else {
            throw AttestationError(
                .systemdUnavailable,
                "systemd named an implausible unit for process \(pid): \(id.prefix(80))"
            )
        }
        return SystemdUnit(id: id, fragmentPath: Self.string(&unit.fragment_path), slice: Self.string(&unit.slice))
    }

    /// A NUL-terminated C array field as a String.
    private static func string<T>(_ field: inout T) -> String {
        withUnsafeBytes(of: &field) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    private func selector(_ kind: String, _ value: String) throws -> Selector {
        try Selector(type: name, value: "\(kind):\(value)")
    }
}
