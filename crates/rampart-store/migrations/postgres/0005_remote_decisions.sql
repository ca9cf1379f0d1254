-- Decisions applied from the server's decision stream keep the server's id:
-- the fleet outbox pushes only the node's own decisions.
ALTER TABLE decisions ADD COLUMN remote_id BIGINT;
