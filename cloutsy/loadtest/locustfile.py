"""The realistic traffic mix `invoke loadtest` drives (locust, headless).

Mostly reads (lists with filters, details), some sign-ups, OTP send+verify flows and
brand logins. Every acknowledged sign-up id is appended to $CLOUTSY_LOADTEST_IDS so the
task can read each one back afterwards. Needs the service in development (debugOtp).
"""

from __future__ import annotations

import itertools
import os
import random
import threading

from locust import HttpUser, between, task

NICHES = ["fashion", "beauty", "food", "travel", "fitness", "technology", "gaming", "music"]
_counter = itertools.count()
_lock = threading.Lock()
_ids_path = os.environ.get("CLOUTSY_LOADTEST_IDS", "")
_run = os.environ.get("CLOUTSY_LOADTEST_RUN", "0")


def unique() -> int:
    with _lock:
        return next(_counter)


def phone(n: int) -> str:
    # A valid Indian mobile number unique to this run and request.
    return f"+917{int(_run) % 1000:03d}{n % 1_000_000:06d}"


def record(kind: str, account_id: int) -> None:
    if _ids_path:
        with _lock, open(_ids_path, "a") as fh:
            fh.write(f"{kind} {account_id}\n")


class Visitor(HttpUser):
    wait_time = between(0.05, 0.3)

    def on_start(self) -> None:
        self.known_ids: list[int] = []
        n = unique()
        self.brand_email = f"lt{_run}b{n}@example.com"
        self.brand_password = "loadtest-password-123"
        body = {
            "email": self.brand_email,
            "password": self.brand_password,
            "phone": phone(500_000 + n),
            "brandName": f"Load Brand {n}",
            "username": f"lt{_run}b{n}",
            "nicheIds": [1, 2],
        }
        with self.client.post(
            "/brands", json=body, name="POST /brands", catch_response=True
        ) as resp:
            if resp.status_code == 201:
                record("brand", resp.json()["id"])
                resp.success()

    @task(10)
    def browse(self) -> None:
        params: dict[str, int | str] = {"limit": random.choice([10, 20, 50])}
        if random.random() < 0.6:
            params["niche"] = random.choice(NICHES)
        if random.random() < 0.2:
            params["verified"] = random.choice(["true", "false"])
        if random.random() < 0.2:
            params["q"] = random.choice(["food", "travel", "lt", "creator"])
        resp = self.client.get("/influencers", params=params, name="GET /influencers")
        if resp.status_code == 200:
            items = resp.json()["items"]
            self.known_ids.extend(i["id"] for i in items[:3])
            self.known_ids = self.known_ids[-50:]

    @task(3)
    def browse_brands(self) -> None:
        self.client.get("/brands", params={"niche": random.choice(NICHES)}, name="GET /brands")

    @task(2)
    def niches(self) -> None:
        self.client.get("/niches", name="GET /niches")

    @task(8)
    def detail(self) -> None:
        if self.known_ids:
            account_id = random.choice(self.known_ids)
            self.client.get(f"/influencers/{account_id}", name="GET /influencers/{id}")

    @task(3)
    def sign_up(self) -> None:
        n = unique()
        number = phone(n)
        body = {
            "name": f"Load {n}",
            "username": f"lt{_run}i{n}",
            "email": f"lt{_run}i{n}@example.com",
            "phone": number,
            "nicheIds": random.sample(range(1, 21), k=random.randint(1, 3)),
        }
        with self.client.post(
            "/influencers", json=body, name="POST /influencers", catch_response=True
        ) as resp:
            if resp.status_code == 201:
                account_id = resp.json()["id"]
                record("influencer", account_id)
                self.known_ids.append(account_id)
                resp.success()
                self.verify_phone(number)

    def verify_phone(self, number: str) -> None:
        resp = self.client.post(
            "/auth/otp/send", json={"phone": number}, name="POST /auth/otp/send"
        )
        if resp.status_code != 202:
            return
        code = resp.json().get("debugOtp")
        if code:
            self.client.post(
                "/auth/otp/verify",
                json={"phone": number, "otp": code},
                name="POST /auth/otp/verify",
            )

    @task(1)
    def login(self) -> None:
        body = {"email": self.brand_email, "password": self.brand_password}
        resp = self.client.post("/auth/brands/login", json=body, name="POST /auth/brands/login")
        if resp.status_code == 200:
            token = resp.json()["token"]
            headers = {"Authorization": f"Bearer {token}"}
            self.client.get("/me", headers=headers, name="GET /me")
            self.client.post("/auth/logout", headers=headers, name="POST /auth/logout")
