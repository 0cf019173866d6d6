import Foundation
import Testing

@testable import LanyardAgent

/// The TOML 1.0 parser against the specification's rules: each form read as a TOML reader must read it, each
/// malformed document refused with its position, and no input (random or cut short) crashing it.
@Suite("TOML 1.0 parser")
struct TOMLParserTests {
    func parse(_ text: String) throws -> ConfigTable {
        try TOMLParser.parse(Array(text.utf8)).root
    }

    @Test("keys: bare, quoted, literal, dotted with spaces, and tables of every kind")
    func keysAndTables() throws {
        let root = try parse(
            #"""
            bare_key-1 = 1
            "quoted key" = 2
            'literal.key' = 3
            site . "google.com" . up = true
            "" = "empty key"

            [fruit.apple]
            color = "red"
            [fruit.apple.texture]
            smooth = true
            [fruit]
            name = "fruits"          # a super-table after its sub-table

            [[products]]
            name = "Hammer"
            [[products]]
            [[products]]
            name = "Nail"
            [products.dimensions]
            size = 1

            [dog."tater.man"]
            type.name = "pug"
            """#
        )
        #expect(root["bare_key-1"] == .integer(1))
        #expect(root["quoted key"] == .integer(2))
        #expect(root["literal.key"] == .integer(3))
        #expect(root[""] == .string("empty key"))
        guard case .table(let site)? = root["site"], case .table(let google)? = site["google.com"] else {
            Issue.record("dotted keys did not make tables")
            return
        }
        #expect(google["up"] == .bool(true))
        guard case .table(let fruit)? = root["fruit"], case .table(let apple)? = fruit["apple"] else {
            Issue.record("no fruit.apple")
            return
        }
        #expect(fruit["name"] == .string("fruits"))
        #expect(apple["color"] == .string("red"))
        guard case .array(let products)? = root["products"], products.count == 3,
            case .table(let last) = products[2]
        else {
            Issue.record("no three products")
            return
        }
        #expect(last["name"] == .string("Nail"))
        guard case .table(let dimensions)? = last["dimensions"] else {
            Issue.record("[products.dimensions] belongs to the last product")
            return
        }
        #expect(dimensions["size"] == .integer(1))
    }

    @Test("strings: escapes, Unicode, multi-line with trimmed line ends, literal and raw")
    func strings() throws {
        let root = try parse(
            #"""
            basic = "tab\there \"quoted\" \\ \u00e9 \U0001F600"
            multi = """
            Roses are red
            Violets are blue"""
            trimmed = """\
                The quick brown \
                fox."""
            quotes = """Here are two quotation marks: "". Simple enough."""
            edge = """"This," she said, "is just a pointless statement.""""
            literal = 'C:\Users\nodejs\templates'
            raw = '''
            The first newline is
            trimmed in raw strings.
               All other whitespace
               is preserved.
            '''
            apos = ''''That,' she said, 'is still pointless.''''
            crlf = "a"
            """#.replacingOccurrences(of: "crlf = \"a\"", with: "crlf = \"\"\"x\r\ny\"\"\"")
        )
        #expect(root["basic"] == .string("tab\there \"quoted\" \\ é 😀"))
        #expect(root["multi"] == .string("Roses are red\nViolets are blue"))
        #expect(root["trimmed"] == .string("The quick brown fox."))
        #expect(root["quotes"] == .string("Here are two quotation marks: \"\". Simple enough."))
        #expect(root["edge"] == .string("\"This,\" she said, \"is just a pointless statement.\""))
        #expect(root["literal"] == .string(#"C:\Users\nodejs\templates"#))
        #expect(
            root["raw"]
                == .string("The first newline is\ntrimmed in raw strings.\n   All other whitespace\n   is preserved.\n")
        )
        #expect(root["apos"] == .string("'That,' she said, 'is still pointless.'"))
        #expect(root["crlf"] == .string("x\r\ny"))
    }

    @Test("numbers, booleans, dates and times")
    func scalars() throws {
        let root = try parse(
            """
            int1 = +99
            int2 = -17
            int3 = 1_000
            hex = 0xDEAD_beef
            oct = 0o755
            bin = 0b1101_0110
            min = -9223372036854775808
            max = 9223372036854775807
            float1 = +1.0
            float2 = -0.01
            float3 = 5e+22
            float4 = 6.626e-34
            float5 = 224_617.445_991_228
            infinite = -inf
            notanumber = nan
            yes = true
            no = false
            odt1 = 1979-05-27T07:32:00Z
            odt2 = 1979-05-27T00:32:00.999999-07:00
            odt3 = 1979-05-27 07:32:00Z
            ldt = 1979-05-27T07:32:00
            ld = 1979-05-27
            lt = 00:32:00.999999
            leap = 2024-02-29
            """
        )
        #expect(root["int1"] == .integer(99))
        #expect(root["int2"] == .integer(-17))
        #expect(root["int3"] == .integer(1000))
        #expect(root["hex"] == .integer(0xDEAD_BEEF))
        #expect(root["oct"] == .integer(0o755))
        #expect(root["bin"] == .integer(0b1101_0110))
        #expect(root["min"] == .integer(.min))
        #expect(root["max"] == .integer(.max))
        #expect(root["float1"] == .float(1))
        #expect(root["float3"] == .float(5e22))
        #expect(root["float5"] == .float(224_617.445_991_228))
        #expect(root["infinite"] == .float(-.infinity))
        if case .float(let value)? = root["notanumber"] { #expect(value.isNaN) } else { Issue.record("nan") }
        #expect(root["yes"] == .bool(true) && root["no"] == .bool(false))
        for key in ["odt1", "odt2", "odt3", "ldt", "ld", "lt", "leap"] {
            guard case .dateTime? = root[key] else {
                Issue.record("\(key) is not a date or time")
                continue
            }
        }
    }

    @Test("arrays and inline tables, nested, with comments and trailing commas where allowed")
    func compound() throws {
        let root = try parse(
            """
            integers = [ 1, 2, 3 ]
            nested = [ [ 1, 2 ], ["a", "b", "c"] ]
            mixed = [ 0.1, "x", 3 ]
            multiline = [
              1,  # one
              2,
            ]
            point = { x = 1, y = 2 }
            animal = { type.name = "pug" }
            points = [ { x = 1 }, { x = 2 } ]
            empty = {}
            """
        )
        #expect(root["integers"] == .array([.integer(1), .integer(2), .integer(3)]))
        #expect(root["multiline"] == .array([.integer(1), .integer(2)]))
        #expect(root["mixed"] == .array([.float(0.1), .string("x"), .integer(3)]))
        guard case .table(let point)? = root["point"] else {
            Issue.record("no inline table")
            return
        }
        #expect(point["y"] == .integer(2))
        guard case .array(let points)? = root["points"], case .table(let second) = points[1] else {
            Issue.record("no array of inline tables")
            return
        }
        #expect(second["x"] == .integer(2))
        #expect(root["empty"] == .table(ConfigTable()))
    }

    static let invalid: [(String, String)] = [
        ("a = 1\na = 2", "key a is defined twice"),
        ("[a]\nb = 1\n[a]", "table a is defined twice"),
        ("[fruit]\napple.color = \"red\"\n[fruit.apple]", "table fruit.apple is defined twice"),
        ("[a.b.c]\n[a]\nb.d = 1", "a dotted key cannot add to it"),
        ("a = {x = 1}\na.y = 2", "a dotted key cannot add to it"),
        ("a = {x = 1}\n[a.b]", "inline table"),
        ("a = [1]\n[[a]]", "not as an array of tables"),
        ("[[a]]\n[a]", "table a is defined twice"),
        ("a = [{x = 1}]\n[[a]]", "not as an array of tables"),
        ("x = {a = 1,}", "cannot end with a ','"),
        ("x = \"\"\"a", "unterminated multi-line string"),
        ("x = '''a", "unterminated multi-line literal string"),
        ("x = 'a\nb'", "unterminated literal string"),
        ("x = +0x10", "is not a TOML value"),
        ("x = 01", "is not a TOML value"),
        ("x = 1.", "is not a TOML value"),
        ("x = .5", "is not a TOML value"),
        ("x = 1e", "is not a TOML value"),
        ("x = 1_", "is not a TOML value"),
        ("x = True", "is not a TOML value"),
        ("x = 1979-13-01", "is not a TOML value"),
        ("x = 25:00:00", "is not a TOML value"),
        ("x = 1 2", "expected the end of the line"),
        ("x = 1 # ok\ny", "expected '='"),
        ("= 1", "expected a key"),
        ("[]", "expected a key"),
        ("[a.]", "expected a key"),
        ("[a", "expected ']'"),
        ("[[a]", "expected ']]'"),
        ("x = \"a\u{7F}\"", "control character"),
        ("# comment \u{01}", "control character"),
        ("x = \"\\u00\"", "not a Unicode scalar"),
        ("x = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]", "nested deeper than 64"),
        ("\"\"\"key\"\"\" = 1", "a key cannot be a multi-line string"),
    ]

    @Test("malformed documents are refused with what is wrong and where", arguments: invalid)
    func refuses(text: String, expected: String) {
        do {
            _ = try TOMLParser.parse(Array(text.utf8))
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.message.contains(expected), "\(error)")
            #expect(error.line >= 1 && error.column >= 1)
        }
    }

    @Test("invalid UTF-8 anywhere is refused, not replaced")
    func invalidUTF8() {
        for bytes in [
            [0x78, 0x20, 0x3D, 0x20, 0x22, 0xC3, 0x28, 0x22], [0x23, 0x20, 0xFF],
            [0x78, 0x3D, 0x22, 0xED, 0xA0, 0x80, 0x22],
        ]
            as [[UInt8]]
        {
            #expect(throws: TOMLParser.Failure.self) { try TOMLParser.parse(bytes) }
        }
    }

    @Test("every prefix of a real file, and random bytes, are refused or read, never a crash")
    func neverCrashes() throws {
        let reference = try Data(
            contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
                "../../config/lanyard.toml"
            )
        )
        let bytes = Array(reference)
        #expect((try? TOMLParser.parse(bytes)) != nil, "the reference configuration parses")
        for cut in stride(from: 0, to: bytes.count, by: 7) { _ = try? TOMLParser.parse(Array(bytes[..<cut])) }
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("[]{}=\"'.,#\n\r\t abc019_-+:eExob\\u".utf8)
        for _ in 0..<3000 {
            let text = (0..<Int.random(in: 0...80, using: &generator)).map { _ in alphabet.randomElement()! }
            _ = try? TOMLParser.parse(text)
        }
    }
}
