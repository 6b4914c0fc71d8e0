"""A webhook receiver that trusts only what promptbus signed (Standard Webhooks).

pip install aiohttp standardwebhooks
WEBHOOK_SECRET=whsec_... python examples/webhook_receiver.py --port 9000
"""

import argparse
import json
import os

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--port", type=int, default=9000)
args = parser.parse_args()
# The verifier checks the signature and that webhook-timestamp is within 5 minutes.
verifier = Webhook(os.environ["WEBHOOK_SECRET"])
seen: set[str] = set()


async def receive(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        event = verifier.verify(body, dict(request.headers))
    except WebhookVerificationError as exc:
        return web.Response(status=400, text=f"rejected: {exc}")
    message_id = request.headers["webhook-id"]
    if message_id not in seen:  # retries and replays repeat the id: act once
        seen.add(message_id)
        print(json.dumps({"webhook-id": message_id, **event}), flush=True)
    return web.Response(status=204)


app = web.Application()
app.router.add_post("/", receive)
web.run_app(app, host="127.0.0.1", port=args.port)
