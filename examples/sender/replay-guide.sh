#!/usr/bin/env bash
# replay-guide.sh replays the curl commands of the webhooks guide ("Register
# Webhook", "Test Webhook", "Managing Webhooks", "Debug Webhook Deliveries")
# against a running examples/sender, and checks every answer with jq.
#
#   go run ./examples/sender -tokens dev-token:acme -allow-insecure &
#   API=http://127.0.0.1:8080 TOKEN=dev-token \
#   RECEIVER_URL=http://127.0.0.1:3001/webhooks/noa-server \
#     examples/sender/replay-guide.sh
#
# RECEIVER_URL must answer 200 to POST (the guide's Express endpoint does).
set -euo pipefail

API=${API:-http://127.0.0.1:8080}
TOKEN=${TOKEN:?set TOKEN to a token given to the sender with -tokens}
RECEIVER_URL=${RECEIVER_URL:?set RECEIVER_URL to your webhook endpoint}

# check NAME FILTER: the last answer ($LAST) must satisfy the jq FILTER.
check() {
	if ! jq -e "$2" >/dev/null <<<"$LAST"; then
		echo "FAIL $1: $LAST" >&2
		exit 1
	fi
	echo "ok   $1"
}

# 2. Register Webhook
LAST=$(curl -sS -X POST "$API/v1/webhooks" \
  -H "Authorization: Bearer $TOKEN" \
  -H "Content-Type: application/json" \
  -d '{
    "url": "'"$RECEIVER_URL"'",
    "events": [
      "workflow.completed",
      "workflow.failed",
      "agent.status.changed"
    ],
    "description": "Production webhook for workflow monitoring",
    "active": true
  }')
check "register webhook" '.success and (.data.id | startswith("wh_")) and (.data.secret | startswith("whsec_")) and .data.active and (.data.events | length == 3)'
WEBHOOK_ID=$(jq -r .data.id <<<"$LAST")

# 3. Test Webhook
LAST=$(curl -sS -X POST "$API/v1/webhooks/$WEBHOOK_ID/test" \
  -H "Authorization: Bearer $TOKEN")
check "test webhook" '.success and .data.event == "webhook.test" and .data.status == "success" and .data.response.statusCode == 200 and (.data | has("secret") | not)'
DELIVERY_ID=$(jq -r .data.id <<<"$LAST")

# Managing Webhooks: List Webhooks
LAST=$(curl -sS -X GET "$API/v1/webhooks" \
  -H "Authorization: Bearer $TOKEN")
check "list webhooks" '.success and any(.data[]; .id == "'"$WEBHOOK_ID"'") and all(.data[]; has("secret") | not) and (.pagination | has("nextCursor"))'

# Update Webhook
LAST=$(curl -sS -X PUT "$API/v1/webhooks/$WEBHOOK_ID" \
  -H "Authorization: Bearer $TOKEN" \
  -H "Content-Type: application/json" \
  -d '{
    "events": ["workflow.completed", "workflow.failed"],
    "active": true
  }')
check "update webhook" '.success and .data.events == ["workflow.completed", "workflow.failed"] and .data.active and .data.description == "Production webhook for workflow monitoring"'

# View Webhook Deliveries
LAST=$(curl -sS -X GET "$API/v1/webhooks/$WEBHOOK_ID/deliveries" \
  -H "Authorization: Bearer $TOKEN")
check "view deliveries" '.success and .data[0].id == "'"$DELIVERY_ID"'" and .data[0].status == "success"'

# Debug Webhook Deliveries
LAST=$(curl -sS -X GET "$API/v1/webhooks/$WEBHOOK_ID/deliveries/$DELIVERY_ID" \
  -H "Authorization: Bearer $TOKEN")
check "delivery detail" '.success and (.data | .id and .webhookId and .eventId and .status == "success" and .attempts == 1 and .request.url and .request.method == "POST" and .request.headers["X-Webhook-Signature"] and .request.body.event == "webhook.test" and .response.statusCode == 200 and (.response.duration | type == "number") and .timestamp)'

# Delete Webhook
LAST=$(curl -sS -X DELETE "$API/v1/webhooks/$WEBHOOK_ID" \
  -H "Authorization: Bearer $TOKEN")
check "delete webhook" '.success and .data.deleted'
LAST=$(curl -sS -X GET "$API/v1/webhooks/$WEBHOOK_ID" \
  -H "Authorization: Bearer $TOKEN")
check "deleted webhook is gone" '(.success | not) and .error.code == "not_found"'

echo "all guide requests answered as documented"
