import SPIFFE

/// `[[federation]]`: foreign trust domains' bundles for the embedded CA, read from files (SPIFFE bundle or PEM).
enum FederationSettings {
    static func read(_ sections: [SectionReader]) -> [TrustDomain: SPIFFEBundle] {
        var bundles: [TrustDomain: SPIFFEBundle] = [:]
        for section in sections {
            defer { section.finish() }
            let name = section.string("trust_domain")
            let path = section.string("bundle_path")
            guard let name else {
                if !section.has("trust_domain") { section.problem("trust_domain", "is required") }
                continue
            }
            guard let trustDomain = try? TrustDomain(name) else {
                section.problem("trust_domain", "\"\(name)\" is not a valid trust domain")
                continue
            }
            guard let path else {
                if !section.has("bundle_path") { section.problem("bundle_path", "is required") }
                continue
            }
            let resolved = path.hasPrefix("/") ? path : section.problems.baseDirectory + "/" + path
            do {
                bundles[trustDomain] = try FederationBundleLoader.load(path: resolved, trustDomain: trustDomain)
            } catch {
                section.problem("bundle_path", "\(error)")
            }
        }
        return bundles
    }
}
