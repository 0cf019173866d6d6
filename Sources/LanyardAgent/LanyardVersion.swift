/// The version `lanyard --version` and `lanyard status` report.
public enum LanyardVersion {
    public static let current = "0.1.0-dev"
}
