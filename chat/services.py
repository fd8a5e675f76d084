"""The verbs of chat: conversations, messages and replies, with access checks in one place.

Sync functions are for views; the `a`-prefixed ones wrap them for consumers and the
generation task (one thread-sensitive executor: no query runs per streamed token).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Case, Exists, OuterRef, Q, QuerySet, TextField, Value, When
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from chat.models import Conversation, Message

SIDEBAR_PAGE_SIZE = 40
HISTORY_PAGE_SIZE = 60
TITLE_FALLBACK_CHARS = 60

# Options a user may set per conversation, with their types. `num_predict` is the length
# limit: Ollama silently ignores an option named "max_tokens".
OPTION_TYPES: dict[str, type] = {
    "temperature": float,
    "top_p": float,
    "top_k": int,
    "num_ctx": int,
    "seed": int,
    "num_predict": int,
}


OPTION_LABELS = {
    "temperature": gettext_lazy("Temperature"),
    "top_p": gettext_lazy("Top P"),
    "top_k": gettext_lazy("Top K"),
    "num_ctx": gettext_lazy("Context length"),
    "seed": gettext_lazy("Seed"),
    "num_predict": gettext_lazy("Max tokens"),
}


class ChatError(Exception):
    """A request the user can fix: shown to them as is."""

    def __init__(self, message: str, *, code: str = "invalid"):
        super().__init__(message)
        self.message = message
        self.code = code


# -- access -------------------------------------------------------------------------------
def conversation_for_user(user, pk: Any) -> Conversation:
    """Return the user's conversation `pk`, or raise Http404 (also for another user's)."""
    try:
        return Conversation.objects.get(pk=int(pk), owner=user)
    except (Conversation.DoesNotExist, TypeError, ValueError):
        raise Http404("conversation not found") from None


def message_for_user(user, pk: Any) -> Message:
    """Return a message in one of the user's conversations, or raise Http404."""
    try:
        return Message.objects.select_related("conversation").get(pk=int(pk), conversation__owner=user)
    except (Message.DoesNotExist, TypeError, ValueError):
        raise Http404("message not found") from None


# -- conversations ------------------------------------------------------------------------
MARKDOWN_NOISE = re.compile(r"(\*\*|__|`+|^#+\s*|^>\s*)", re.MULTILINE)


def title_from_text(text: str) -> str:
    """Return the start of a message as a title: one line, without markdown markup."""
    line = " ".join(MARKDOWN_NOISE.sub("", text).split())
    if len(line) <= TITLE_FALLBACK_CHARS:
        return line or _("New chat")
    return line[: TITLE_FALLBACK_CHARS - 1].rstrip() + "…"


def conversation_create(*, user, model: str = "", title: str = "") -> Conversation:
    return _insert(Conversation(owner=user, model=model, title=title))


def conversation_rename(*, conversation: Conversation, title: str) -> Conversation:
    title = " ".join(title.split())[:200]
    if not title:
        raise ChatError(_("A title cannot be empty."))
    conversation.title = title
    conversation.save(update_fields=["title"])
    return conversation


def conversation_set_flags(
    *, conversation: Conversation, pinned: bool | None = None, archived: bool | None = None
):
    fields = []
    if pinned is not None:
        conversation.pinned = pinned
        fields.append("pinned")
    if archived is not None:
        conversation.archived = archived
        fields.append("archived")
    if fields:
        conversation.save(update_fields=fields)
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    from chat import generation

    for reply_id in conversation.messages.filter(status=Message.Status.STREAMING).values_list(
        "id", flat=True
    ):
        generation.generation_cancel_local(reply_id)
    conversation.delete()


def options_clean(raw: dict[str, Any]) -> dict[str, Any]:
    """Return validated generation options; empty values are dropped, bad ones refused."""
    options: dict[str, Any] = {}
    for key, kind in OPTION_TYPES.items():
        value = raw.get(key)
        if value in (None, ""):
            continue
        try:
            options[key] = kind(value)
        except (TypeError, ValueError):
            raise ChatError(_("%(name)s must be a number.") % {"name": OPTION_LABELS[key]}) from None
    ranges = {"temperature": (0, 2), "top_p": (0, 1), "top_k": (1, 1000), "num_ctx": (256, 1_048_576)}
    for key, (low, high) in ranges.items():
        if key in options and not low <= options[key] <= high:
            raise ChatError(
                _("%(name)s must be between %(low)s and %(high)s.")
                % {"name": OPTION_LABELS[key], "low": low, "high": high}
            )
    if "num_predict" in options and options["num_predict"] == 0:
        raise ChatError(_("Max tokens must be positive, or -1 for no limit."))
    keep_alive = str(raw.get("keep_alive") or "").strip()
    if keep_alive:
        if keep_alive.lstrip("-").isdigit():
            keep_alive = f"{keep_alive}s" if keep_alive != "0" else "0"
        options["keep_alive"] = keep_alive
    think = raw.get("think")
    if think in ("on", "true", True):
        options["think"] = True
    elif think in ("off", "false", False):
        options["think"] = False
    return options


def conversation_configure(
    *, conversation: Conversation, system_prompt: str, options: dict[str, Any], model: str | None = None
) -> Conversation:
    conversation.system_prompt = system_prompt.strip()
    conversation.options = options_clean(options)
    fields = ["system_prompt", "options"]
    if model:
        conversation.model = model[:200]
        fields.append("model")
    conversation.save(update_fields=fields)
    return conversation


def conversation_set_model(*, conversation: Conversation, model: str) -> Conversation:
    conversation.model = model[:200]
    conversation.save(update_fields=["model"])
    profile = getattr(conversation.owner, "profile", None)
    if profile is not None and profile.default_model != conversation.model:
        profile.default_model = conversation.model
        profile.save(update_fields=["default_model"])
    return conversation


@dataclass
class SidebarPage:
    pinned: list[Conversation]
    conversations: list[Conversation]
    next_cursor: str


CJK = re.compile(r"[\u3000-\u9fff\uac00-\ud7af\uff00-\uffef]")


def _search(queryset: QuerySet[Conversation], query: str) -> QuerySet[Conversation]:
    """Filter conversations whose title or any message matches `query`.

    On PostgreSQL, message text is searched with full-text search (a GIN index on
    to_tsvector('simple', content)); CJK text has no word breaks for that parser, so CJK
    queries, and SQLite, use a substring match.
    """
    messages = Message.objects.filter(conversation=OuterRef("pk"))
    if connection.vendor == "postgresql" and not CJK.search(query):
        from django.contrib.postgres.search import SearchQuery, SearchVector

        matching = messages.annotate(document=SearchVector("content", config="simple")).filter(
            document=SearchQuery(query, config="simple", search_type="websearch")
        )
    else:
        matching = messages
        for word in query.split()[:8]:
            matching = matching.filter(content__icontains=word)
    return queryset.filter(Q(title__icontains=query) | Exists(matching))


def sidebar_page(*, user, query: str = "", archived: bool = False, cursor: str = "") -> SidebarPage:
    """Return one page of the sidebar: pinned first (first page only), then newest first.

    Pages are keyset-paginated on (updated_at, id), so page 500 costs what page 1 does.
    The flags are compared with `__in`: Django writes `flag=False` as `NOT flag`, which SQLite
    cannot look up in the conv_sidebar index (it read and sorted all of a user's rows).
    """
    base = Conversation.objects.filter(owner=user, archived__in=[archived]).only(
        "id", "title", "pinned", "archived", "updated_at"
    )
    query = query.strip()[:200]
    if query:
        base = _search(base, query)
    pinned: list[Conversation] = []
    if not cursor:
        pinned = list(base.filter(pinned__in=[True]).order_by("-updated_at", "-id")[:100])
    rest = base.filter(pinned__in=[False]).order_by("-updated_at", "-id")
    if cursor:
        try:
            stamp, last_id = cursor.rsplit("_", 1)
            when = datetime.fromisoformat(stamp)
            # The redundant `updated_at <= when` lets the index start at the cursor.
            rest = rest.filter(Q(updated_at__lte=when), Q(updated_at__lt=when) | Q(id__lt=int(last_id)))
        except ValueError:
            pass
    page = list(rest[: SIDEBAR_PAGE_SIZE + 1])
    next_cursor = ""
    if len(page) > SIDEBAR_PAGE_SIZE:
        page = page[:SIDEBAR_PAGE_SIZE]
        last = page[-1]
        next_cursor = f"{last.updated_at.isoformat()}_{last.id}"
    return SidebarPage(pinned=pinned, conversations=page, next_cursor=next_cursor)


def history_page(*, conversation: Conversation, before: int | None = None) -> tuple[list[Message], bool]:
    """Return the latest messages (before id `before`), oldest first, and whether more exist."""
    messages = conversation.messages.order_by("-id")
    if before:
        messages = messages.filter(id__lt=before)
    page = list(messages[: HISTORY_PAGE_SIZE + 1])
    has_more = len(page) > HISTORY_PAGE_SIZE
    page = page[:HISTORY_PAGE_SIZE]
    page.reverse()
    _mark_stale_in_place(page)
    return page, has_more


def _mark_stale_in_place(messages: list[Message]) -> None:
    """Show replies whose stream died with their process as interrupted (and record it)."""
    stale_before = timezone.now() - timedelta(seconds=settings.STREAM_STALE_AFTER)
    from chat import generation

    for message in messages:
        if (
            message.status == Message.Status.STREAMING
            and message.updated_at < stale_before
            and not generation.generation_is_local(message.id)
        ):
            Message.objects.filter(pk=message.pk, status=Message.Status.STREAMING).update(
                status=Message.Status.INTERRUPTED, finished_at=timezone.now()
            )
            message.status = Message.Status.INTERRUPTED


# -- messages and replies -------------------------------------------------------------------
def message_validate(content: str) -> str:
    if isinstance(content, str):
        content = content.replace("\x00", "")  # PostgreSQL cannot store NUL; it carries no text
    if not isinstance(content, str) or not content.strip():
        raise ChatError(_("Type a message first."), code="empty")
    if len(content) > settings.MAX_MESSAGE_CHARS:
        raise ChatError(
            _("That message is too long (%(length)s characters; the limit is %(limit)s).")
            % {"length": len(content), "limit": settings.MAX_MESSAGE_CHARS},
            code="too_long",
        )
    return content


def user_active_generations(user, *, up_to: int | None = None) -> int:
    """Count the user's running replies (stopping at `up_to`, which is all a limit needs)."""
    stale_before = timezone.now() - timedelta(seconds=settings.STREAM_STALE_AFTER)
    if up_to is not None:  # every send asks: see _hot_sql
        params = [user.pk, Message.Status.STREAMING.value, _db_datetime(stale_before), up_to]
        return len(_hot_rows("running", params))
    return Message.objects.filter(
        conversation__owner=user, status=Message.Status.STREAMING, updated_at__gte=stale_before
    ).count()


# The two reads every chat turn makes, as plain SQL: building them with the ORM took ten
# times the Python of running them (1,100 and 1,850 function calls against 90, measured for
# docs/benchmarks.md), and a turn is what a burst of chats queues behind on the database
# thread. Table and column names come from the models; values are parameters.
def _hot_sql(name: str) -> str:
    message, conversation = Message._meta, Conversation._meta
    column = {field.name: connection.ops.quote_name(field.column) for field in message.concrete_fields}
    table = connection.ops.quote_name(message.db_table)
    if name == "running":
        conversations = connection.ops.quote_name(conversation.db_table)
        owner = connection.ops.quote_name(conversation.get_field("owner").column)
        return (
            f"SELECT m.{column['id']} FROM {table} m INNER JOIN {conversations} c "
            f"ON m.{column['conversation']} = c.{connection.ops.quote_name(conversation.pk.column)} "
            f"WHERE c.{owner} = %s AND m.{column['status']} = %s AND m.{column['updated_at']} >= %s LIMIT %s"
        )
    return (  # the history of a reply: what chat_request's ORM query would select
        f"SELECT {column['role']}, {column['content']} FROM {table} "
        f"WHERE {column['conversation']} = %s AND {column['id']} < %s "
        f"AND NOT ({column['role']} = %s AND {column['content']} = %s) AND {column['status']} <> %s "
        f"ORDER BY {column['id']}"
    )


_hot_statements: dict[tuple[str, str], str] = {}


def _hot_rows(name: str, params: list[Any]) -> list[tuple]:
    key = (connection.vendor, name)
    if key not in _hot_statements:
        _hot_statements[key] = _hot_sql(name)
    with connection.cursor() as cursor:
        cursor.execute(_hot_statements[key], params)
        return cursor.fetchall()


def _db_datetime(value: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


@dataclass
class Turn:
    """What a send, edit, regenerate or retry produced: the user message (if any) and the reply."""

    conversation: Conversation
    user_message: Message | None
    reply: Message
    created_conversation: bool = False
    # The /api/chat arguments of a streaming reply, read in the same database call as the
    # turn, so the generation does not need one of its own to start.
    request: dict[str, Any] | None = None


def _start_request(reply: Message, *, history: list[tuple[str, str]] | None = None) -> dict[str, Any] | None:
    if reply.status != Message.Status.STREAMING:
        return None
    return chat_request(reply=reply, history=history)


def _reply_create(*, conversation: Conversation, model: str) -> Message:
    """Create the reply row, streaming, unless it cannot start (no model, too many running).

    A reply that cannot start is saved as an error with a Retry, so the user's message that
    was saved just before it is never lost.
    """
    with transaction.atomic():  # the count and the insert as one step (see _lock_user)
        return _reply_insert(conversation=conversation, model=model)


def _lock_user(user_id: int) -> None:
    """Hold the user's row until the transaction ends, so that two workers starting replies
    for one user at once count each other's (SQLite's IMMEDIATE transactions already do)."""
    if connection.vendor != "sqlite":
        with connection.cursor() as cursor:
            meta = get_user_model()._meta
            table, pk = connection.ops.quote_name(meta.db_table), connection.ops.quote_name(meta.pk.column)
            cursor.execute(f"SELECT 1 FROM {table} WHERE {pk} = %s FOR UPDATE", [user_id])


def _reply_insert(*, conversation: Conversation, model: str) -> Message:
    reply = Message(conversation=conversation, role=Message.Role.ASSISTANT, model=model)
    limit = settings.MAX_GENERATIONS_PER_USER
    if model:
        _lock_user(conversation.owner_id)
    if not model:
        reply.status, reply.error_kind = Message.Status.ERROR, "no_model"
        reply.error = _("Choose a model first, then retry.")
    elif user_active_generations(conversation.owner, up_to=limit) >= limit:
        reply.status, reply.error_kind = Message.Status.ERROR, "limit"
        reply.error = _("You already have %(count)s replies running; wait for one to finish, then retry.") % {
            "count": limit
        }
    else:
        reply.status = Message.Status.STREAMING
    if reply.status == Message.Status.ERROR:
        reply.finished_at = timezone.now()
    return _insert(reply)


# The rows every chat turn adds, inserted with one plain INSERT each: Model.save() spent some
# 600 Python function calls per row on query building (against some 60 here, measured for
# docs/benchmarks.md). The same values go in: each field's pre_save (auto_now_add...) and
# get_db_prep_save, as the ORM does. The project connects no model signals (house style).
_insert_statements: dict[tuple[str, str], tuple[str, list]] = {}


def _insert(instance):
    """Insert a new model instance, set its primary key and return it."""
    model = type(instance)
    key = (connection.vendor, model._meta.label)
    if key not in _insert_statements:
        meta, quote = model._meta, connection.ops.quote_name
        fields = [field for field in meta.concrete_fields if not field.primary_key]
        columns = ", ".join(quote(field.column) for field in fields)
        sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
        if connection.features.can_return_columns_from_insert:
            sql += f" RETURNING {quote(meta.pk.column)}"
        _insert_statements[key] = (sql, fields)
    sql, fields = _insert_statements[key]
    values = [field.get_db_prep_save(field.pre_save(instance, add=True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        if connection.features.can_return_columns_from_insert:
            instance.pk = cursor.fetchone()[0]
        else:
            instance.pk = connection.ops.last_insert_id(cursor, model._meta.db_table, model._meta.pk.column)
    instance._state.adding = False
    instance._state.db = connection.alias
    return instance


def _touch(conversation: Conversation) -> None:
    conversation.updated_at = timezone.now()
    conversation.save(update_fields=["updated_at", "model", "title"])


def turn_send(*, user, conversation_id: Any, content: str, model: str = "") -> Turn:
    """Save the user's message first (before anything can fail), then create the reply."""
    content = message_validate(content)
    created = False
    with transaction.atomic():
        if conversation_id:
            conversation = conversation_for_user(user, conversation_id)
        else:  # created with its title and model: nothing to update after the message
            conversation = conversation_create(user=user, model=model[:200], title=title_from_text(content))
            created = True
        if model:
            conversation.model = model[:200]
        if not conversation.title:
            conversation.title = title_from_text(content)
        user_message = _insert(
            Message(
                conversation=conversation, role=Message.Role.USER, content=content, model=conversation.model
            )
        )
        if not created:
            _touch(conversation)
    reply = _reply_create(conversation=conversation, model=conversation.model)
    # A new conversation's history is the message just saved: no need to read it back.
    history = [(user_message.role, user_message.content)] if created else None
    return Turn(
        conversation=conversation,
        user_message=user_message,
        reply=reply,
        created_conversation=created,
        request=_start_request(reply, history=history),
    )


def turn_regenerate(*, user, reply_id: Any) -> Turn:
    """Replace the last reply (or a failed one) with a new one from the same history."""
    old = message_for_user(user, reply_id)
    conversation = old.conversation
    if old.role != Message.Role.ASSISTANT or old.status == Message.Status.STREAMING:
        raise ChatError(_("Only a finished reply can be regenerated."))
    if conversation.messages.filter(id__gt=old.id).exists():
        raise ChatError(_("Only the last reply can be regenerated."))
    with transaction.atomic():
        old.delete()
        _touch(conversation)
    reply = _reply_create(conversation=conversation, model=conversation.model)
    return Turn(conversation=conversation, user_message=None, reply=reply, request=_start_request(reply))


def turn_edit(*, user, message_id: Any, content: str) -> Turn:
    """Change a past user message, drop everything after it, and answer it anew."""
    content = message_validate(content)
    message = message_for_user(user, message_id)
    conversation = message.conversation
    if message.role != Message.Role.USER:
        raise ChatError(_("Only your own messages can be edited."))
    from chat import generation

    later = conversation.messages.filter(id__gt=message.id)
    for reply_id in later.filter(status=Message.Status.STREAMING).values_list("id", flat=True):
        generation.generation_cancel_local(reply_id)
    with transaction.atomic():
        later.delete()
        message.content = content
        message.save(update_fields=["content", "updated_at"])
        _touch(conversation)
    reply = _reply_create(conversation=conversation, model=conversation.model)
    return Turn(conversation=conversation, user_message=message, reply=reply, request=_start_request(reply))


def chat_request(*, reply: Message, history: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Return the arguments of Ollama's /api/chat for `reply`: history, options, model.

    `history` ((role, content) pairs, oldest first) is read from the database unless given.
    """
    conversation = reply.conversation
    if history is None:  # without the empty replies and the failed ones
        params = [conversation.pk, reply.id, Message.Role.ASSISTANT.value, "", Message.Status.ERROR.value]
        history = _hot_rows("history", params)
    messages = [{"role": role, "content": content} for role, content in history]
    if conversation.system_prompt:
        messages.insert(0, {"role": "system", "content": conversation.system_prompt})
    options = dict(conversation.options or {})
    keep_alive = options.pop("keep_alive", None)
    think = options.pop("think", None)
    return {
        "model": reply.model or conversation.model,
        "messages": messages,
        "options": options or None,
        "keep_alive": keep_alive,
        "think": think,
    }


def reply_checkpoint(*, reply_id: int, content: str, thinking: str) -> None:
    """Save partial text (every few seconds, never per token); also the stream's heartbeat."""
    Message.objects.filter(pk=reply_id, status=Message.Status.STREAMING).update(
        content=content, thinking=thinking, updated_at=timezone.now()
    )


def replies_checkpoint(*, texts: dict[int, tuple[str, str]]) -> None:
    """Save the partial (content, thinking) of several streaming replies in one statement."""
    if not texts:
        return

    def by_reply(index: int) -> Case:
        return Case(
            *(When(pk=reply_id, then=Value(text[index])) for reply_id, text in texts.items()),
            output_field=TextField(),
        )

    Message.objects.filter(pk__in=list(texts), status=Message.Status.STREAMING).update(
        content=by_reply(0), thinking=by_reply(1), updated_at=timezone.now()
    )


def reply_finish(
    *,
    reply_id: int,
    content: str,
    thinking: str,
    status: str,
    error: str = "",
    error_kind: str = "",
    stats: dict | None = None,
) -> None:
    now = timezone.now()
    Message.objects.filter(pk=reply_id).update(
        content=content,
        thinking=thinking,
        status=status,
        error=error,
        error_kind=error_kind,
        finished_at=now,
        updated_at=now,
        **(stats or {}),
    )


def replies_mark_interrupted() -> int:
    """Mark replies left streaming by a dead process (stale heartbeat) as interrupted."""
    stale_before = timezone.now() - timedelta(seconds=settings.STREAM_STALE_AFTER)
    return Message.objects.filter(status=Message.Status.STREAMING, updated_at__lt=stale_before).update(
        status=Message.Status.INTERRUPTED, finished_at=timezone.now()
    )


def conversation_set_title_if_unchanged(*, conversation_id: int, old_title: str, title: str) -> bool:
    return bool(Conversation.objects.filter(pk=conversation_id, title=old_title).update(title=title[:200]))


def first_exchange(*, conversation_id: int) -> list[dict[str, str]] | None:
    """Return the first user message and reply when the conversation has exactly one reply."""
    rows = list(
        Message.objects.filter(conversation_id=conversation_id)
        .order_by("id")
        .values_list("role", "content")[:3]
    )
    if len(rows) != 2 or rows[0][0] != Message.Role.USER or not rows[1][1]:
        return None
    return [{"role": role, "content": content[:2000]} for role, content in rows]


# Async wrappers for consumers and the generation task.
aturn_send = database_sync_to_async(turn_send)
aturn_regenerate = database_sync_to_async(turn_regenerate)
aturn_edit = database_sync_to_async(turn_edit)
areply_checkpoint = database_sync_to_async(reply_checkpoint)
areplies_checkpoint = database_sync_to_async(replies_checkpoint)
areply_finish = database_sync_to_async(reply_finish)
aconversation_for_user = database_sync_to_async(conversation_for_user)
amessage_for_user = database_sync_to_async(message_for_user)
afirst_exchange = database_sync_to_async(first_exchange)
aconversation_set_title_if_unchanged = database_sync_to_async(conversation_set_title_if_unchanged)


@database_sync_to_async
def achat_request(*, reply_id: int) -> dict[str, Any]:
    reply = Message.objects.select_related("conversation").get(pk=reply_id)
    return chat_request(reply=reply)


@database_sync_to_async
def areply_state(*, user, reply_id: Any) -> Message:
    """Return a reply of the user's (for resuming a stream), marking it interrupted if stale."""
    reply = message_for_user(user, reply_id)
    _mark_stale_in_place([reply])
    return reply
