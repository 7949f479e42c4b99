"""Drives the running system only with clients nobody on the team wrote: nats-py publishes the
JSON job events, a grpcio client generated from proto/ calls ListMessages with a token from
`make token`, and Twilio's own RequestValidator checks the simulator's signatures."""

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import nats
import pytest
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def system():
    ports = {name: free_port() for name in ["NATS_PORT", "POSTGRES_PORT", "GRPC_PORT", "WEB_PORT", "WEBHOOK_PORT", "SIM_PORT", "SMTP_PORT"]}
    data = tempfile.mkdtemp(prefix="msg-py-")
    env = dict(os.environ, DATA_DIR=data, DEMO="0", MSG_PYTHON=sys.executable, **{k: str(v) for k, v in ports.items()})
    log = open(Path(data) / "devstack.out", "w+")
    process = subprocess.Popen([str(ROOT / "target/debug/devstack")], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        log.seek(0)
        if "READY" in log.read():
            break
        if process.poll() is not None:
            log.seek(0)
            pytest.fail("devstack exited early:\n" + log.read())
        time.sleep(0.5)
    else:
        process.terminate()
        pytest.fail("devstack did not become ready")
    yield ports
    process.terminate()
    process.wait(timeout=60)
    if not os.environ.get("MSG_KEEP_TEST_DIRS"):
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def stubs():
    out = tempfile.mkdtemp(prefix="msg-stubs-")
    include = str(Path(protoc.__file__).parent / "_proto")
    code = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}",
                        "messaging/v1/feed.proto"])
    assert code == 0, "protoc failed"
    sys.path.insert(0, out)
    from messaging.v1 import feed_pb2, feed_pb2_grpc  # noqa: E402
    yield feed_pb2, feed_pb2_grpc
    shutil.rmtree(out, ignore_errors=True)


def token(account):
    result = subprocess.run(["make", "-s", "token", f"ACCOUNT={account}"], cwd=ROOT, capture_output=True, text=True, check=True)
    return result.stdout.strip().splitlines()[-1]


async def publish(nats_port, events):
    client = await nats.connect(f"nats://127.0.0.1:{nats_port}")
    js = client.jetstream()
    for event in events:
        subject = f"jobs.{event['account_id']}.{event['type']}"
        await js.publish(subject, json.dumps(event).encode(), headers={"Nats-Msg-Id": event["event_id"]})
    await client.close()


def test_a_scheduled_job_reaches_the_feed_delivered(system, stubs):
    feed_pb2, feed_pb2_grpc = stubs
    account = "acc_python"
    events = [
        {"event_id": "py_acc_1", "type": "account.updated", "occurred_at": "2026-11-26T15:00:00Z", "account_id": account,
         "account": {"name": "Bright Electric", "timezone": "America/New_York", "sms_number": "+12125550100",
                     "email_from": "hello@bright.example",
                     "quiet_hours": {"start": "00:00", "end": "00:00"}}},
        {"event_id": "py_job_1", "type": "job.scheduled", "occurred_at": "2026-11-26T15:04:05Z", "account_id": account,
         "customer": {"id": "cus_py", "name": "Ada Lovelace", "phone": "(212) 555-0188", "email": "",
                      "notifications": {"sms": True, "email": True}},
         "job": {"id": "job_py", "title": "Panel upgrade", "starts_at": "2026-11-30T14:00:00Z",
                 "ends_at": "2026-11-30T16:00:00Z", "technician": {"name": "Grace Hopper"}, "address": "1 Main St"}},
    ]
    asyncio.run(publish(system["NATS_PORT"], events))

    channel = grpc.insecure_channel(f"127.0.0.1:{system['GRPC_PORT']}")
    stub = feed_pb2_grpc.FeedServiceStub(channel)
    metadata = [("authorization", f"Bearer {token(account)}")]
    deadline = time.time() + 60
    messages = []
    while time.time() < deadline:
        messages = stub.ListMessages(feed_pb2.ListMessagesRequest(page_size=10), metadata=metadata).messages
        if messages and messages[0].status == feed_pb2.MESSAGE_STATUS_DELIVERED:
            break
        time.sleep(0.3)
    assert len(messages) == 1, messages
    message = messages[0]
    assert message.status == feed_pb2.MESSAGE_STATUS_DELIVERED
    assert message.type == feed_pb2.MESSAGE_TYPE_APPOINTMENT_CONFIRMATION
    assert message.channel == feed_pb2.CHANNEL_SMS
    assert message.direction == feed_pb2.DIRECTION_OUTBOUND
    assert message.customer.name == "Ada Lovelace"
    assert message.customer.phone == "+12125550188"
    assert message.HasField("sent_at")


def test_calls_without_a_valid_token_are_refused(system, stubs):
    feed_pb2, feed_pb2_grpc = stubs
    stub = feed_pb2_grpc.FeedServiceStub(grpc.insecure_channel(f"127.0.0.1:{system['GRPC_PORT']}"))
    for metadata in ([], [("authorization", "Bearer not-a-jwt")]):
        with pytest.raises(grpc.RpcError) as error:
            stub.ListMessages(feed_pb2.ListMessagesRequest(), metadata=metadata)
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_health_and_reflection_answer_on_the_feed_port(system):
    """grpcio's health client sees FeedService SERVING; its reflection client (v1alpha) and a raw
    v1 reflection call both list FeedService and resolve its methods without a token."""
    from google.protobuf import descriptor_pool
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    channel = grpc.insecure_channel(f"127.0.0.1:{system['GRPC_PORT']}")
    health = health_pb2_grpc.HealthStub(channel)
    for service in ["", "messaging.v1.FeedService"]:
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, service
    with pytest.raises(grpc.RpcError) as error:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND

    database = ProtoReflectionDescriptorDatabase(channel)
    assert "messaging.v1.FeedService" in database.get_services()
    pool = descriptor_pool.DescriptorPool(database)
    methods = {m.name for m in pool.FindServiceByName("messaging.v1.FeedService").methods}
    assert {"ListMessages", "GetThread", "GetMessage", "SendMessage", "WatchFeed", "GetCounts", "MarkRead"} <= methods

    v1 = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    answers = list(v1(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
    names = {s.name for s in answers[0].list_services_response.service}
    assert "messaging.v1.FeedService" in names and "grpc.health.v1.Health" in names


def test_simulator_signs_callbacks_as_twilio_does(system):
    """Twilio's own RequestValidator accepts the simulator's status callbacks."""
    import base64
    import threading
    import urllib.parse
    import urllib.request
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from twilio.request_validator import RequestValidator

    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            received.append((self.path, dict(urllib.parse.parse_qsl(body)), self.headers.get("X-Twilio-Signature")))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    callback = f"http://127.0.0.1:{server.server_port}/status/abc?x=1"
    sid, token = "AC00000000000000000000000000000000", "dev-auth-token"
    form = urllib.parse.urlencode({"To": "+12125550199", "From": "+12125550100", "Body": "hello", "StatusCallback": callback}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{system['SIM_PORT']}/2010-04-01/Accounts/{sid}/Messages.json", data=form)
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode())
    with urllib.request.urlopen(request) as response:
        assert response.status == 201
        created = json.loads(response.read())
    assert created["sid"].startswith("SM") and created["status"] == "queued"

    deadline = time.time() + 20
    while time.time() < deadline and len(received) < 2:
        time.sleep(0.1)
    server.shutdown()
    assert [params["MessageStatus"] for _, params, _ in received] == ["sent", "delivered"]
    validator = RequestValidator(token)
    for path, params, signature in received:
        assert validator.validate(callback, params, signature), (path, params)
        assert not validator.validate(callback, dict(params, MessageStatus="failed"), signature)


def test_webhooks_accept_only_what_twilios_helper_signed(system, stubs):
    """delivery-status checks X-Twilio-Signature as Twilio computes it: a request signed with Twilio's
    own RequestValidator for the public URL is accepted, once however often it is replayed; forged,
    modified, wrong-URL and replayed-at-another-URL requests get 403 and change nothing."""
    import urllib.error
    import urllib.parse
    import urllib.request

    from twilio.request_validator import RequestValidator

    feed_pb2, feed_pb2_grpc = stubs
    validator = RequestValidator("dev-auth-token")
    url = f"http://127.0.0.1:{system['WEBHOOK_PORT']}/webhooks/twilio/inbound"
    params = {"MessageSid": "SMpython000000000000000000000001", "From": "+12125550188", "To": "+12125550100",
              "Body": "Running 10 minutes late?", "AccountSid": "AC00000000000000000000000000000000"}

    def post(target, form, signature):
        request = urllib.request.Request(target, data=urllib.parse.urlencode(form).encode())
        request.add_header("X-Twilio-Signature", signature)
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""

    signature = validator.compute_signature(url, params)
    assert post(url, params, "bm90IGEgc2lnbmF0dXJl")[0] == 403, "forged"
    assert post(url, dict(params, Body="STOP"), signature)[0] == 403, "modified"
    assert post(url, params, validator.compute_signature(f"https://evil.example/webhooks/twilio/inbound", params))[0] == 403, "wrong URL"
    assert post(url + "?extra=1", params, signature)[0] == 403, "replayed at another URL"
    deadline = time.time() + 30
    while True:
        status, body = post(url, params, signature)
        if status == 200 or time.time() > deadline:
            break
        time.sleep(0.3)  # the account's listing may still be on its way to delivery-status
    assert status == 200 and body.startswith("<?xml") and "<Response>" in body, (status, body)
    assert post(url, params, signature)[0] == 200, "a replay is answered, and changes nothing"

    stub = feed_pb2_grpc.FeedServiceStub(grpc.insecure_channel(f"127.0.0.1:{system['GRPC_PORT']}"))
    metadata = [("authorization", f"Bearer {token('acc_python')}")]
    deadline = time.time() + 30
    inbound = []
    while time.time() < deadline and not inbound:
        messages = stub.ListMessages(feed_pb2.ListMessagesRequest(page_size=50), metadata=metadata).messages
        inbound = [m for m in messages if m.direction == feed_pb2.DIRECTION_INBOUND]
        time.sleep(0.3)
    # The replay was refused a second row in the same transaction that would have published it.
    assert len(inbound) == 1, inbound
    assert inbound[0].preview == "Running 10 minutes late?"
    assert inbound[0].customer.customer_id == "cus_py"
