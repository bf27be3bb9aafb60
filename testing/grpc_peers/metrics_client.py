"""A Python grpcio client of `aggregate-metrics` that speaks only the original tool's protocol:
`/Metrics/Submit` with `Result` fields 1-7 (see proto/metrics.proto), encoded here by hand.

Usage: python3 metrics_client.py <host:port> <node> <count>
Sends <count> results in one stream, closes the channel, and prints one JSON line:
{"acknowledged": [attempt ids], "cancelled": [], "sent": [the results, by field name]}.
"""
import json
import sys
import time
import uuid

import grpc


def varint(value):
    out = bytearray()
    while value > 127:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(number, wire_type, payload):
    return varint((number << 3) | wire_type) + payload


def text(number, value):
    data = value.encode("utf-8")
    return field(number, 2, varint(len(data)) + data)


def encode_result(result):
    return b"".join([
        text(1, result["attempt_id"]),
        field(2, 0, varint(result["started_at"])),
        text(3, result["image"]),
        text(4, result["error"]) if result["error"] else b"",
        field(5, 0, varint(result["duration_ms"])),
        text(6, result["node"]),
        field(7, 0, varint(result["size_bytes"])),
    ])


def main():
    target, node, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    results = [{
        "attempt_id": str(uuid.uuid4()),
        "started_at": int(time.time()),
        "image": "registry.example/python/image-%d:v1" % i,
        "error": "pull failed in the original client" if i % 2 else "",
        "duration_ms": 200 + i,
        "node": node,
        "size_bytes": 2000 + i,
    } for i in range(count)]
    channel = grpc.insecure_channel(target)
    submit = channel.stream_unary("/Metrics/Submit")
    submit((encode_result(r) for r in results), timeout=10)
    channel.close()
    acknowledged = [r["attempt_id"] for r in results]
    print(json.dumps({"acknowledged": acknowledged, "cancelled": [], "sent": results}))


if __name__ == "__main__":
    main()
