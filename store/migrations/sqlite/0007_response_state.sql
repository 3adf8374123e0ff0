-- The Responses API served by chat-only deployments: the gateway keeps the conversation itself.
-- A route with a response is such a translated response: history is what a follow-up
-- (previous_response_id) replays, response the Response object GET /v1/responses/{id} answers.
-- Both are NULL for a response an upstream keeps. They live and expire with the route.

ALTER TABLE response_routes ADD COLUMN history BLOB;
ALTER TABLE response_routes ADD COLUMN response BLOB;
