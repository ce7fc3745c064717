from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model


@pytest.fixture
def staff(client, e2e):
    """A test client logged in as a superuser: it may move the shop clock from /ops/."""
    client.force_login(get_user_model().objects.create_superuser("staff", "staff@example.com", "test-only"))
    return client
