package import Foundation

/// A container as the fake Docker Engine describes it.
package struct FakeContainer: Sendable {
    package var id: String
    package var image: String
    package var imageID: String
    package var labels: [String: String]
    package var environment: [String]

    package init(
        id: String = FakeContainer.randomID(),
        image: String,
        imageID: String = "sha256:" + FakeContainer.randomID(),
        labels: [String: String] = [:],
        environment: [String] = []
    ) {
        self.id = id
        self.image = image
        self.imageID = imageID
        self.labels = labels
        self.environment = environment
    }

    /// 64 lowercase hex digits, as Docker and Podman spell container and image IDs.
    package static func randomID() -> String {
        (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }

    /// The part of `GET /containers/<id>/json` that matters, with some of the fields real engines add around it.
    package var inspectJSON: Data {
        let document: [String: Any] = [
            "Id": id,
            "Created": "2026-12-03T08:00:00.000000000Z",
            "Image": imageID,
            "Name": "/fake-\(id.prefix(12))",
            "State": ["Status": "running", "Running": true, "Pid": 4242],
            "Config": ["Image": image, "Labels": labels, "Env": environment, "Hostname": String(id.prefix(12))],
        ]
        return (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])) ?? Data()
    }
}
