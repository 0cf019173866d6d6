import SPIFFE
import Testing

@testable import Attestation

@Suite("Docker and Podman containers from cgroup paths")
struct RuntimeContainerLocatorTests {
    static let id = String(repeating: "ab", count: 32)
    static let pod = String(repeating: "cd", count: 32)

    @Test(
        "each runtime's own layout locates its container",
        arguments: [
            ("/docker/\(id)", RuntimeContainerLocator.Runtime.docker),
            ("/docker/\(id)/nested/by/the/container", .docker),
            ("/system.slice/docker-\(id).scope", .docker),
            ("/machine.slice/libpod-\(id).scope", .podman),
            ("/machine.slice/libpod-\(id).scope/container", .podman),
            ("/machine.slice/machine-libpod_pod_\(pod).slice/libpod-\(id).scope", .podman),
            ("/libpod_parent/libpod-\(id)", .podman),
            ("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-\(id).scope", .rootlessPodman(uid: 1000)),
            (
                "/user.slice/user-1000.slice/user@1000.service/user.slice/user-libpod_pod_\(pod).slice/libpod-\(id).scope/container",
                .rootlessPodman(uid: 1000)
            ),
            ("/user.slice/user-0.slice/user@0.service/libpod-\(id).scope", .rootlessPodman(uid: 0)),
        ]
    )
    func locates(path: String, runtime: RuntimeContainerLocator.Runtime) {
        #expect(RuntimeContainerLocator.location(inPath: path) == .init(runtime: runtime, containerID: Self.id))
    }

    @Test(
        "container-like names outside the runtimes' layouts locate nothing",
        arguments: [
            "/",
            "/\(id)",
            "/lanyard/docker-\(id).scope",
            "/system.slice/lanyard.service/docker-\(id).scope",
            "/user.slice/user-1000.slice/user@1000.service/app.slice/docker-\(id).scope",
            "/user.slice/user-1000.slice/session-3.scope/libpod-\(id).scope",
            "/user.slice/user-1000.slice/user@1001.service/user.slice/libpod-\(id).scope",
            "/user.slice/user-01000.slice/user@01000.service/libpod-\(id).scope",
            "/machine.slice/libpod-conmon-\(id).scope",
            "/machine.slice/libpod-\(id.uppercased()).scope",
            "/machine.slice/libpod-\(id.dropLast()).scope",
            "/docker/\(id).scope",
            "/kubepods.slice/kubepods-besteffort.slice/docker-\(id).scope",
            "/../docker/\(id)",
            "/docker/../docker/\(id)",
        ]
    )
    func refuses(path: String) {
        #expect(RuntimeContainerLocator.location(inPath: path) == nil)
    }

    @Test("v1 hierarchies must agree; root paths alongside are fine")
    func combines() throws {
        let other = String(repeating: "ef", count: 32)
        #expect(
            try RuntimeContainerLocator.location(in: ["/", "/docker/\(Self.id)", "/docker/\(Self.id)"])
                == .init(runtime: .docker, containerID: Self.id)
        )
        #expect(throws: AttestationError.self) {
            try RuntimeContainerLocator.location(in: ["/docker/\(Self.id)", "/docker/\(other)"])
        }
        #expect(try RuntimeContainerLocator.location(in: ["/", "/user.slice"]) == nil)
    }

    @Test("inspect answers become selectors; a missing field is named")
    func inspection() throws {
        let json = """
            {"Id":"\(Self.id)","Image":"sha256:\(Self.pod)","Config":{"Image":"nginx:1.27",
             "Labels":{"tier":"web","app":"shop"},"Env":["PATH=/usr/bin","MODE=prod"]}}
            """
        let container = try ContainerInspection(json: Array(json.utf8))
        #expect(
            container.selectorValues() == [
                "label:app:shop", "label:tier:web", "env:PATH=/usr/bin", "env:MODE=prod", "image_id:nginx:1.27",
                "image_config_digest:sha256:\(Self.pod)",
            ]
        )
        #expect(container.selectorValues(kindPrefix: "user:1000:").first == "user:1000:label:app:shop")
        let nullLabels = #"{"Id":"x","Image":"sha256:y","Config":{"Image":"i","Labels":null,"Env":null}}"#
        #expect(try ContainerInspection(json: Array(nullLabels.utf8)).labels == [:])
        for (text, missing) in [
            (#"{"Image":"sha256:y","Config":{"Image":"i"}}"#, "Id"),
            (#"{"Id":"x","Image":"sha256:y"}"#, "Config.Image"),
            (#"{"Id":"x","Image":"sha256:y","Config":{"Image":"i","Labels":{"a":1}}}"#, "Config.Labels.a"),
            (#"{"Id":"x","Image":"sha256:y","Config":{"Image":"i","Env":[3]}}"#, "Config.Env"),
            ("[1,2]", "not a JSON object"),
            ("{", "not JSON"),
        ] {
            do {
                _ = try ContainerInspection(json: Array(text.utf8))
                Issue.record("accepted \(text)")
            } catch {
                #expect("\(error)".contains(missing), "\(error)")
            }
        }
    }

    @Test("HTTP answers: Content-Length, chunked, until close; partial ones wait; malformed ones are errors")
    func httpFraming() throws {
        func parse(_ text: String, closed: Bool = false) throws -> (Int, String)? {
            try HTTPResponse(parsing: Array(text.utf8), socketPath: "/s", closed: closed).map {
                ($0.answer.status, String(decoding: $0.answer.body, as: UTF8.self))
            }
        }
        #expect(try parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")! == (200, "hello"))
        #expect(try parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel") == nil)
        #expect(try parse("HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}")! == (404, "{}"))
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\n\r\n"
        #expect(try parse(chunked)! == (200, "hello"))
        #expect(try parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n") == nil)
        #expect(try parse("HTTP/1.0 200 OK\r\n\r\nuntil close") == nil)
        #expect(try parse("HTTP/1.0 200 OK\r\n\r\nuntil close", closed: true)! == (200, "until close"))
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n",
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 20x OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "HTTP/1.1 200 OK",
        ] {
            #expect(throws: AttestationError.self, "\(bad)") { try parse(bad, closed: true) }
        }
    }
}
