"""The original study's load: users reading and writing random keys through the proxy.

FastHttpUser, 90% GET / 10% PUT over KV_KEYS keys (preloaded by bench/run.py), short think time.
"""
import os
import random

from locust import FastHttpUser, between, task

KEYS = int(os.environ.get("KV_KEYS", "10000"))
VALUE = {"value": "benchmark value of about fifty bytes, fixed size."}


class KVUser(FastHttpUser):
    wait_time = between(0.005, 0.015)

    @task(9)
    def get(self):
        self.client.get(f"/get?key=bench:{random.randint(1, KEYS)}", name="/get")

    @task(1)
    def put(self):
        self.client.post(f"/put?key=bench:{random.randint(1, KEYS)}", json=VALUE, name="/put")
