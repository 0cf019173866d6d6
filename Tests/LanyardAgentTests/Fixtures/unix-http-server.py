#!/usr/bin/env python3
"""Serves the files of a directory over plain HTTP on a Unix socket: a stand-in for the local endpoint a
trust_bundle_url with trust_bundle_unix_socket points at. Usage: unix-http-server.py SOCKET DIRECTORY"""
import http.server
import os
import socketserver
import sys


class Files(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = os.path.join(sys.argv[2], os.path.basename(self.path))
        try:
            with open(path, "rb") as file:
                data = file.read()
        except OSError:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _ = super().get_request()
        return request, ("unix", 0)


Server(sys.argv[1], Files).serve_forever()
