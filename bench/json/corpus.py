#!/usr/bin/python3
"""Writes three JSON corpora with the shapes of the classic benchmark files
(deterministic: the same bytes on every run).

  twitter.json  a social-media timeline: statuses with users, entities, much
                Unicode text (Japanese, emoji, accents), 64-bit ids
  citm.json     a ticket catalogue: objects keyed by small integers as
                strings, arrays of integers, many nulls
  canada.json   a GeoJSON polygon of ~110,000 points (~220,000 floats)

usage: corpus.py OUTDIR
"""
import json
import random
import sys

rng = random.Random(20261122)

JA = "東京都渋谷区で新しいカフェがオープンしました今日はとても良い天気ですね明日の会議は午後三時からです"
WORDS = ["coffee", "morning", "release", "update", "weekend", "music", "train", "concert", "news",
         "café", "naïve", "über", "déjà vu", "señor", "Zürich", "Ελλάδα", "Москва"]
EMOJI = ["😀", "🎉", "☕", "🚀", "❤️", "🌸", "👍"]


def text(n):
    parts = []
    for _ in range(n):
        r = rng.random()
        if r < 0.45:
            start = rng.randrange(len(JA) - 12)
            parts.append(JA[start:start + rng.randrange(4, 12)])
        elif r < 0.9:
            parts.append(rng.choice(WORDS))
        else:
            parts.append(rng.choice(EMOJI))
    return " ".join(parts)


def user(i):
    uid = 100000000 + rng.randrange(10**9)
    return {
        "id": uid, "id_str": str(uid),
        "name": text(2), "screen_name": "user_%d" % i,
        "location": rng.choice(["東京", "Paris", "", "New York", "大阪府"]),
        "description": text(8),
        "url": None if rng.random() < 0.5 else "http://example.com/u/%d" % i,
        "entities": {"description": {"urls": []}},
        "protected": False, "followers_count": rng.randrange(10**5),
        "friends_count": rng.randrange(5000), "listed_count": rng.randrange(100),
        "created_at": "Sun Jul 20 06:42:45 +0000 2014", "favourites_count": rng.randrange(10**4),
        "utc_offset": None, "time_zone": None, "geo_enabled": rng.random() < 0.3,
        "verified": False, "statuses_count": rng.randrange(10**5), "lang": "ja",
        "contributors_enabled": False, "is_translator": False, "is_translation_enabled": False,
        "profile_background_color": "C0DEED",
        "profile_image_url": "http://pbs.twimg.com/profile_images/%d/abc_normal.jpeg" % uid,
        "profile_use_background_image": True, "default_profile": True,
        "following": False, "follow_request_sent": False, "notifications": False,
    }


def status(i):
    sid = 505874924095815681 + i * 7919  # beyond 2^53, as real tweet ids are
    return {
        "metadata": {"result_type": "recent", "iso_language_code": "ja"},
        "created_at": "Sun Aug 31 00:29:15 +0000 2014",
        "id": sid, "id_str": str(sid),
        "text": text(rng.randrange(6, 20)),
        "source": "<a href=\"http://twitter.com/download/iphone\" rel=\"nofollow\">Twitter for iPhone</a>",
        "truncated": False,
        "in_reply_to_status_id": None, "in_reply_to_user_id": None, "in_reply_to_screen_name": None,
        "user": user(i), "geo": None, "coordinates": None, "place": None, "contributors": None,
        "retweet_count": rng.randrange(100), "favorite_count": rng.randrange(100),
        "entities": {
            "hashtags": [{"text": rng.choice(WORDS), "indices": [3, 10]} for _ in range(rng.randrange(3))],
            "symbols": [],
            "urls": [{"url": "http://t.co/%d" % i, "expanded_url": "http://example.com/%d" % i,
                      "display_url": "example.com/%d" % i, "indices": [20, 42]}] if i % 3 == 0 else [],
            "user_mentions": [{"screen_name": "user_%d" % (i + 1), "name": text(1),
                               "id": 1000 + i, "id_str": str(1000 + i), "indices": [0, 9]}],
        },
        "favorited": False, "retweeted": False, "lang": "ja",
    }


def twitter():
    return {"statuses": [status(i) for i in range(200)],
            "search_metadata": {"completed_in": 0.087, "max_id": 505874924095815681,
                                "query": "%E4%B8%80", "count": 100, "since_id": 0}}


def citm():
    def ids(n):
        return [rng.randrange(100000000, 400000000) for _ in range(n)]
    area_ids = ids(60)
    events = {}
    for eid in ids(900):
        events[str(eid)] = {"description": None, "id": eid, "logo": None if rng.random() < 0.7 else
                            "/images/UE0AAAAACEKo6QAAAAZDSVRN", "name": rng.choice(WORDS).title() + " " + str(eid % 97),
                            "subTopicIds": ids(rng.randrange(1, 5)), "subjectCode": None, "subtitle": None,
                            "topicIds": ids(rng.randrange(1, 4))}
    event_ids = [int(k) for k in events]
    performances = []
    for pid in ids(1300):
        performances.append({
            "eventId": rng.choice(event_ids), "id": pid, "logo": None, "name": None,
            "prices": [{"amount": rng.randrange(10000, 200000), "audienceSubCategoryId": 337100890,
                        "seatCategoryId": sc} for sc in ids(rng.randrange(1, 4))],
            "seatCategories": [{"areas": [{"areaId": a, "blockIds": []} for a in rng.sample(area_ids, rng.randrange(2, 12))],
                                "seatCategoryId": sc} for sc in ids(rng.randrange(1, 5))],
            "seatMapImage": None, "start": 1372701600000 + rng.randrange(10**9), "venueCode": "PLEYEL_PLEYEL"})
    return {
        "areaNames": {str(a): "Arrière-scène " + rng.choice(WORDS) for a in area_ids},
        "audienceSubCategoryNames": {"337100890": "Abonné"},
        "blockNames": {},
        "events": events,
        "performances": performances,
        "seatCategoryNames": {str(s): "1ère catégorie" for s in ids(60)},
        "subTopicNames": {str(s): rng.choice(WORDS) for s in ids(20)},
        "subjectNames": {},
        "topicNames": {str(s): rng.choice(WORDS) for s in ids(30)},
        "topicSubTopics": {str(s): ids(rng.randrange(1, 8)) for s in ids(30)},
        "venueNames": {"PLEYEL_PLEYEL": "Salle Pleyel"},
    }


def canada():
    rings = []
    lon, lat = -65.613616999999977, 43.420273000000009
    for r in range(20):
        ring = []
        for _ in range(2500):
            lon += rng.uniform(-0.01, 0.01)
            lat += rng.uniform(-0.01, 0.01)
            ring.append([lon, lat])
        ring.append(ring[0])
        rings.append(ring)
    return {"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"name": "Canada"},
        "geometry": {"type": "Polygon", "coordinates": rings}}]}


def main():
    out = sys.argv[1]
    for name, make in (("twitter", twitter), ("citm", citm), ("canada", canada)):
        with open("%s/%s.json" % (out, name), "w", encoding="utf-8") as f:
            json.dump(make(), f, ensure_ascii=False, indent=1 if name == "twitter" else None,
                      separators=(",", ":") if name == "canada" else None)


main()
