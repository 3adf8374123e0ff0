-- Prices and usage beyond tokens: images, seconds of input audio, characters of speech input and
-- a fixed price per request. A price row keeps its token prices; the unit prices are added beside
-- them, 0 (or NULL for the image table) meaning none. A usage record says how many of which unit
-- it was billed for (units, unit), beside its tokens.

ALTER TABLE model_pricing
	ADD COLUMN image_prices text,                            -- JSON object: key → micro-USD per image
	ADD COLUMN audio_second bigint NOT NULL DEFAULT 0,       -- micro-USD per second of input audio
	ADD COLUMN characters_per_million bigint NOT NULL DEFAULT 0,
	ADD COLUMN request_price bigint NOT NULL DEFAULT 0;      -- micro-USD per request

ALTER TABLE usage_records
	ADD COLUMN units bigint NOT NULL DEFAULT 0,
	ADD COLUMN unit text NOT NULL DEFAULT '';                 -- 'image' | 'second' | 'character' | ''
