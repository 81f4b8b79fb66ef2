"""UI users: alice signed in, and bob; the deployment is tests/web/deployment.py's."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", password="a-long-secret-42")


@pytest.fixture
def bob(db: None) -> User:
    return User.objects.create_user("bob", password="another-long-secret-7")


@pytest.fixture
def signed_in(client: Client, alice: User) -> Client:
    client.force_login(alice)
    return client
