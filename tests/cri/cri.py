#!/usr/bin/python3
"""cri.py SOCKET METHOD [JSON]: call the CRI (containerd's plugin or hull-cri) METHOD of
RuntimeService, or of ImageService when RuntimeService has no such method, with the
request JSON (protobuf's JSON mapping) and print the response as JSON. Exit 1 with
the gRPC status on stderr when the call fails. Needs cri_pb2.py (protoc --python_out)
in $CRI_PB2_DIR or beside this file."""
import json, os, sys

sys.path.insert(0, os.environ.get("CRI_PB2_DIR", os.path.dirname(os.path.abspath(__file__))))
import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402
import cri_pb2  # noqa: E402

def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    sock, method = sys.argv[1], sys.argv[2]
    body = sys.argv[3] if len(sys.argv) > 3 else "{}"
    svc = cri_pb2.DESCRIPTOR.services_by_name["RuntimeService"]
    if method not in svc.methods_by_name:
        svc = cri_pb2.DESCRIPTOR.services_by_name["ImageService"]
    m = svc.methods_by_name[method]
    req_cls = getattr(cri_pb2, m.input_type.name)
    resp_cls = getattr(cri_pb2, m.output_type.name)
    req = json_format.Parse(body, req_cls())
    with grpc.insecure_channel("unix://" + sock) as ch:
        call = ch.unary_unary("/runtime.v1.%s/%s" % (svc.name, method),
                              request_serializer=req_cls.SerializeToString,
                              response_deserializer=resp_cls.FromString)
        try:
            resp = call(req, timeout=float(os.environ.get("CRI_TIMEOUT", "120")))
        except grpc.RpcError as e:
            print("%s: %s: %s" % (method, e.code().name, e.details()), file=sys.stderr)
            sys.exit(1)
    print(json_format.MessageToJson(resp, preserving_proto_field_name=True, indent=None))

main()
