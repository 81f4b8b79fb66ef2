"""Two API users with tokens, on the embedded deployment of tests/web/deployment.py."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.web.deployment import Deployment


def client_for(user: User) -> APIClient:
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def alice(deployment: Deployment) -> APIClient:
    return client_for(User.objects.create_user("alice", password="pw-alice-123"))


@pytest.fixture
def bob(deployment: Deployment) -> APIClient:
    return client_for(User.objects.create_user("bob", password="pw-bob-123"))


def png(width: int = 40, height: int = 20) -> io.BytesIO:
    data = io.BytesIO()
    Image.new("RGB", (width, height), "red").save(data, "PNG")
    data.seek(0)
    data.name = "photo.png"
    return data
