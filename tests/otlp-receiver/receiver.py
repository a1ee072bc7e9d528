"""A loopback OTLP/HTTP trace receiver for tests, built on the official OpenTelemetry
protobuf definitions (PyPI `opentelemetry-proto`).

Every export is parsed strictly into `ExportTraceServiceRequest` (unknown fields are an
error, as in a real collector), so a payload that a collector would reject fails here too.
Accepted spans are kept and served back as JSON on `GET /spans`; `POST /v1/traces` answers
200 with an empty `ExportTraceServiceResponse` or 400 with the parse error.

Binds 127.0.0.1 only; prints `LISTENING http://127.0.0.1:PORT` when ready; exits when its
stdin closes (so a test that dies does not leave it behind).
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

SPANS = []
ERRORS = []
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, code, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        if self.path != "/v1/traces":
            return self._send(404, "{}")
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        req = ExportTraceServiceRequest()
        try:
            json_format.Parse(body.decode("utf-8"), req, ignore_unknown_fields=False)
        except Exception as e:  # a real collector answers 400 for a bad payload
            with LOCK:
                ERRORS.append(str(e))
            return self._send(400, json.dumps({"error": str(e)}))
        with LOCK:
            for rs in req.resource_spans:
                resource = {a.key: json_format.MessageToDict(a.value) for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for sp in ss.spans:
                        d = json_format.MessageToDict(sp, preserving_proto_field_name=True)
                        d["resource"] = resource
                        d["attrs"] = {a.key: next(iter(json_format.MessageToDict(a.value).values()), None) for a in sp.attributes}
                        d["headers"] = {k.lower(): v for k, v in self.headers.items()}
                        SPANS.append(d)
        self._send(200, "{}")

    def do_GET(self):
        with LOCK:
            if self.path == "/spans":
                return self._send(200, json.dumps(SPANS))
            if self.path == "/errors":
                return self._send(200, json.dumps(ERRORS))
        self._send(404, "{}")


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print(f"LISTENING http://127.0.0.1:{srv.server_address[1]}", flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    srv.shutdown()


if __name__ == "__main__":
    main()
