#!/usr/bin/env bash
# Regenerates the committed Swift code in Sources/LanyardProto/Generated from Sources/LanyardProto/protos.
# Uses Debian's protoc (protobuf-compiler) and the plugins built from the pinned swift-protobuf and grpc-swift-protobuf.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --product protoc-gen-swift
swift build --product protoc-gen-grpc-swift-2
bin=$(swift build --show-bin-path)
out=Sources/LanyardProto/Generated
rm -f "$out"/*.swift
protoc -I Sources/LanyardProto/protos -I /usr/include \
    --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
    --swift_out="$out" --swift_opt=Visibility=Public,FileNaming=PathToUnderscores \
    --plugin=protoc-gen-grpc-swift-2="$bin/protoc-gen-grpc-swift-2" \
    --grpc-swift-2_out="$out" --grpc-swift-2_opt=Visibility=Public,Server=true,Client=true,FileNaming=PathToUnderscores \
    $(find Sources/LanyardProto/protos -name '*.proto' | sort)
# Files without a service come out of the gRPC plugin empty; keep only the ones that define something.
for file in "$out"/*.grpc.swift; do
    grep -q "enum Method" "$file" || rm "$file"
done
echo "generated: $(ls "$out")"
