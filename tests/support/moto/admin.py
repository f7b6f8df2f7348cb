"""Set-up calls against moto (plain HTTP on loopback), run with the venv's python.

`admin.py ENDPOINT` reads one JSON object from stdin:
  {"credentials": {"access_key_id": .., "secret_access_key": ..} | null,
   "calls": [{"service": "secretsmanager", "action": "CreateSecret", "params": {..}}, ..]}
and prints a JSON list with each call's response (ResponseMetadata dropped).
Without credentials the calls are signed with a key moto does not know: only
valid within moto's INITIAL_NO_AUTH_ACTION_COUNT (the bootstrap that creates
the admin key; moto routes a request by its signature's service).
A failing call prints {"error": {"code": .., "message": ..}} in its place.
"""
import json
import sys

import boto3
import botocore.config
import botocore.exceptions


def main():
    endpoint = sys.argv[1]
    request = json.load(sys.stdin)
    creds = request.get("credentials") or {"access_key_id": "bootstrap", "secret_access_key": "bootstrap"}
    session = boto3.session.Session(
        aws_access_key_id=creds["access_key_id"],
        aws_secret_access_key=creds["secret_access_key"],
        region_name="us-east-1",
    )
    config = botocore.config.Config(retries={"max_attempts": 1})
    clients = {}
    out = []
    for call in request["calls"]:
        service = call["service"]
        if service not in clients:
            clients[service] = session.client(service, endpoint_url=endpoint, config=config)
        method = getattr(clients[service], _snake(call["action"]))
        try:
            resp = method(**call.get("params", {}))
            resp.pop("ResponseMetadata", None)
            out.append(resp)
        except botocore.exceptions.ClientError as e:
            out.append({"error": {"code": e.response["Error"].get("Code"), "message": e.response["Error"].get("Message")}})
    json.dump(out, sys.stdout, default=str)


def _snake(name):
    return "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name))


if __name__ == "__main__":
    main()
