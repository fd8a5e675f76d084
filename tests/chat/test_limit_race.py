"""The running-replies limit holds when a user's turns start at the same moment (two workers)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from chat import services
from chat.models import Message


@pytest.mark.django_db(transaction=True)
def test_it_starts_one_reply_when_two_turns_race_for_the_last_slot(user, settings):
    settings.MAX_GENERATIONS_PER_USER = 1
    barrier, outcomes = threading.Barrier(4), []

    def send(index: int) -> None:
        barrier.wait()  # every thread reaches the database together
        try:
            turn = services.turn_send(user=user, conversation_id=None, content=f"m{index}", model="llama3.2")
            outcomes.append(turn.reply.status)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(outcomes) == sorted([Message.Status.STREAMING] + [Message.Status.ERROR] * 3)
    assert Message.objects.filter(role=Message.Role.USER).count() == 4  # nothing typed lost
