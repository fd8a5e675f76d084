"""Points 1–6: the chat websocket against daphne (production settings) and the Ollama double.

Each group starts its own daphne on a fresh database, opens its sockets before any timed part
(handshakes are measured on their own), warms the server up with a few chats, then runs each
point `runs` times. Figures are the median of the runs with min–max.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.bench import client
from tests.bench.client import Chat, ChatSocket, DirectChat
from tests.bench.figures import Figure, percentile
from tests.bench.harness import CpuWindow, Daphne, DoubleProcess, Environment, ProcessStats
from tests.ollama_double import _LOREM_TOKENS, _cycle_tokens

TEAM_RATE = 50.0  # tokens/s of the paced double in point 4
SELF = ProcessStats(os.getpid())


def prompt(tokens: int) -> str:
    return f"Tell me about the sea. [[tokens={tokens}]]"


def expected_text(tokens: int) -> str:
    """Return the reply the double generates for `prompt(tokens)`."""
    return "".join(_cycle_tokens(_LOREM_TOKENS, tokens))


def token_ends(tokens: int) -> list[int]:
    """Return where each token of the reply ends, in code points."""
    ends, total = [], 0
    for token in _cycle_tokens(_LOREM_TOKENS, tokens):
        total += len(token)
        ends.append(total)
    return ends


class Load:
    """CPU used by daphne, the double and this client over one window."""

    def __init__(self, daphne: Daphne, double: DoubleProcess):
        self.windows = {
            "server": CpuWindow(daphne.stats),
            "double": CpuWindow(double.stats),
            "client": CpuWindow(SELF),
        }

    def start(self) -> Load:
        for window in self.windows.values():
            window.start()
        return self

    def stop(self) -> Load:
        for window in self.windows.values():
            window.stop()
        return self

    @property
    def server(self) -> CpuWindow:
        return self.windows["server"]

    def shares(self) -> dict[str, float]:
        return {name: window.share for name, window in self.windows.items()}


def bound_by(shares: Sequence[dict[str, float]]) -> str:
    """Name the process that saturates a core (≥ 85 % on average), with every share."""
    if not shares:
        return ""
    mean = {name: sum(share[name] for share in shares) / len(shares) for name in shares[0]}
    text = ", ".join(f"{name} {value:.0%}" for name, value in mean.items())
    busiest = max(mean, key=mean.get)
    verdict = busiest if mean[busiest] >= 0.85 else "no process saturated"
    if sum(mean.values()) >= 1.8:
        verdict = "both cores busy"
    return f"{verdict} (CPU: {text})"


@dataclass
class Group:
    """One daphne with its double and sockets, and where its figures go."""

    environment: Environment
    double: DoubleProcess
    cookies: list[str]
    figures: dict[str, Figure]
    runs: int
    notes: list[str] = field(default_factory=list)
    daphne: Daphne | None = None
    sockets: list[ChatSocket] = field(default_factory=list)

    async def start(self, sockets: int, *, extra: dict[str, str] | None = None) -> Daphne:
        self.daphne = Daphne(self.environment, self.double, extra=extra or {}).start()
        await asyncio.sleep(1.0)  # let start-up work (recovery, imports) finish before reading RSS
        self.figures["idle_rss"].add(self.daphne.stats.rss_mb())
        window = CpuWindow(self.daphne.stats).start()
        started = time.perf_counter()
        self.sockets = await client.open_sockets(
            self.daphne.ws_url, self.cookies[:sockets], origin=self.daphne.url
        )
        window.stop()
        self.figures["handshake_cpu"].add(window.cpu / sockets * 1000)
        self.figures["handshake_wall"].add((time.perf_counter() - started) / sockets * 1000)
        await self.warm_up()
        return self.daphne

    async def warm_up(self) -> None:
        """Run a few chats so lazy imports, thread pools and DB connections exist before timing."""
        chats = [await socket.send_chat(prompt(5)) for socket in self.sockets[:8]]
        await wait_all([chat.finished for chat in chats], 60)
        await wait_all([chat.titled for chat in chats], 60, required=False)

    async def stop(self) -> None:
        await client.close_sockets(self.sockets)
        self.sockets = []
        if self.daphne is not None:
            errors = self.daphne.errors_logged()
            if errors:
                self.notes.append(f"daphne logged {len(errors)} error lines, first: {errors[0][:200]}")
            self.daphne.stop()


async def wait_all(futures: Sequence[asyncio.Future], timeout: float, *, required: bool = True) -> bool:
    """Wait for every future, at most `timeout` seconds; raise (or return False) when some did not end."""
    if not futures:
        return True
    _done, pending = await asyncio.wait(futures, timeout=timeout)
    if pending and required:
        raise TimeoutError(f"{len(pending)} of {len(futures)} chats did not finish in {timeout}s")
    return not pending


def check_chats(chats: Sequence[Chat], notes: list[str], what: str) -> None:
    bad = [chat for chat in chats if not chat.ok]
    if bad:
        sample = bad[0]
        notes.append(
            f"{what}: {len(bad)} of {len(chats)} replies were not exactly the double's text "
            f"(lost {sample.lost}, duplicated {sample.duplicated}, out of order {sample.out_of_order}, "
            f"done {sample.done and sample.done.get('status')}, error {sample.error})"
        )


# -- points 1 and 5 --------------------------------------------------------------------------
async def relay(group: Group) -> None:
    """Point 1 (tokens/s, one conversation, unpaced) and point 5 (bytes per reply)."""
    socket = group.sockets[0]
    shares: dict[int, list[dict[str, float]]] = {2000: [], 20000: []}
    for _run in range(group.runs):
        for tokens in (2000, 20000):
            expected = expected_text(tokens)
            direct = await client.direct_chat(group.double.url, prompt(tokens))
            if direct.text != expected:
                group.notes.append(f"direct read of {tokens} tokens did not match the double's text")
            load = Load(group.daphne, group.double).start()
            chat = await socket.send_chat(prompt(tokens), expected=expected)
            await wait_all([chat.finished], 120)
            load.stop()
            shares[tokens].append(load.shares())
            check_chats([chat], group.notes, f"relay of {tokens} tokens")
            group.figures[f"relay_{tokens}"].add(
                tokens / (chat.done_at - chat.sent_at), tokens / (direct.done_at - direct.sent_at)
            )
            group.figures[f"relay_first_{tokens}"].add(chat.first_token_latency * 1000)
            wire = chat.bytes_at_done - chat.bytes_at_send
            group.figures[f"bytes_{tokens}"].add(
                wire / len(expected.encode()), direct.bytes_received / len(expected.encode())
            )
            await wait_all([chat.titled], 60, required=False)  # the title request is not part of the figure
    for tokens, runs in shares.items():
        group.figures[f"relay_{tokens}"].bound = bound_by(runs)


# -- point 2 ---------------------------------------------------------------------------------
async def per_chat_overhead(group: Group, concurrency: int = 100) -> None:
    """Point 2: server CPU per chat of one token, `concurrency` chats at once."""
    sockets = group.sockets[:concurrency]
    for _run in range(group.runs):
        window = CpuWindow(group.daphne.stats).start()
        chats = await asyncio.gather(
            *(socket.send_chat(prompt(1), expected=expected_text(1)) for socket in sockets)
        )
        await wait_all([chat.finished for chat in chats], 120)
        titled = await wait_all([chat.titled for chat in chats], 120, required=False)
        window.stop()
        check_chats(chats, group.notes, "per-chat overhead")
        if not titled:
            group.notes.append("per-chat overhead: some titles did not arrive")
        group.figures["chat_cpu"].add(window.cpu / len(chats) * 1000)
        group.figures["chat_wall"].add(
            max(chat.done_at for chat in chats) - min(chat.sent_at for chat in chats)
        )
        # A follow-up in the same conversations: no conversation to create, no title to ask for.
        window = CpuWindow(group.daphne.stats).start()
        follow = await asyncio.gather(
            *(
                socket.send_chat(prompt(1), conversation=chat.conversation, expected=expected_text(1))
                for socket, chat in zip(sockets, chats, strict=True)
            )
        )
        await wait_all([chat.finished for chat in follow], 120)
        window.stop()
        check_chats(follow, group.notes, "per-chat overhead (follow-ups)")
        group.figures["followup_cpu"].add(window.cpu / len(follow) * 1000)


# -- point 3 ---------------------------------------------------------------------------------
async def burst(group: Group, conversations: int = 50, tokens: int = 500) -> None:
    """Point 3: first token when `conversations` chats start at once (unpaced double)."""
    sockets = group.sockets[:conversations]
    shares = []
    for _run in range(group.runs):
        load = Load(group.daphne, group.double).start()
        chats = await asyncio.gather(
            *(socket.send_chat(prompt(tokens), expected=expected_text(tokens)) for socket in sockets)
        )
        await wait_all([chat.finished for chat in chats], 120)
        load.stop()
        shares.append(load.shares())
        check_chats(chats, group.notes, "burst")
        await wait_all([chat.titled for chat in chats], 60, required=False)
        directs = await asyncio.gather(
            *(client.direct_chat(group.double.url, prompt(tokens)) for _ in sockets)
        )
        firsts = [chat.first_token_latency * 1000 for chat in chats]
        direct_firsts = [direct.first_token_latency * 1000 for direct in directs]
        group.figures["burst_p50"].add(percentile(firsts, 0.5), percentile(direct_firsts, 0.5))
        group.figures["burst_p95"].add(percentile(firsts, 0.95), percentile(direct_firsts, 0.95))
    group.figures["burst_p50"].bound = bound_by(shares)


# -- point 4 ---------------------------------------------------------------------------------
def added_delays(arrivals: list[tuple[float, int]], ends: list[int], rate: float) -> list[float]:
    """Return, per token after the first, how late it arrived compared with the double's pace.

    Token k leaves the double k/rate seconds after the first; it arrives with the first frame
    whose text reaches its end. The delay is measured from the first token's arrival.
    """
    if not arrivals:
        return []
    first = arrivals[0][0]
    delays, index = [], 0
    for k, end in enumerate(ends):
        while index < len(arrivals) - 1 and arrivals[index][1] < end:
            index += 1
        if k:
            delays.append(arrivals[index][0] - first - k / rate)
    return delays


async def busy_team(group: Group, conversations: int = 200, tokens: int = 200) -> None:
    """Point 4: `conversations` chats at once against the double paced at TEAM_RATE tokens/s."""
    sockets = group.sockets[:conversations]
    ends = token_ends(tokens)
    expected = expected_text(tokens)
    shares = []
    for _run in range(group.runs):
        group.daphne.stats.reset_peak()
        load = Load(group.daphne, group.double).start()
        chats = await asyncio.gather(
            *(socket.send_chat(prompt(tokens), expected=expected, keep_arrivals=True) for socket in sockets)
        )
        await wait_all([chat.finished for chat in chats], 120)
        load.stop()
        shares.append(load.shares())
        group.figures["team_peak_rss"].add(group.daphne.stats.peak_rss_mb())
        group.figures["team_cpu"].add(load.server.share * 100)
        check_chats(chats, group.notes, "busy team")
        complete = [chat for chat in chats if chat.first_at is not None and chat.done]
        firsts = [chat.first_token_latency * 1000 for chat in complete]
        ratios = [
            (chat.done_at - chat.first_at) / (chat.done["eval_duration"] / 1e9)
            for chat in complete
            if chat.done.get("eval_duration")
        ]
        delays = [delay for chat in complete for delay in added_delays(chat.arrivals, ends, TEAM_RATE)]
        faults = sum(chat.lost + chat.duplicated + chat.out_of_order for chat in chats)
        faults += sum(1 for chat in chats if chat.text != expected)
        await wait_all([chat.titled for chat in chats], 60, required=False)

        directs: list[DirectChat] = await asyncio.gather(
            *(client.direct_chat(group.double.url, prompt(tokens), keep_arrivals=True) for _ in sockets)
        )
        direct_firsts = [direct.first_token_latency * 1000 for direct in directs]
        direct_ratios = [
            (direct.done_at - direct.first_at) / (direct.eval_duration / 1e9) for direct in directs
        ]
        direct_delays = [
            delay for direct in directs for delay in added_delays(direct.arrivals, ends, TEAM_RATE)
        ]
        group.figures["team_first_p50"].add(percentile(firsts, 0.5), percentile(direct_firsts, 0.5))
        group.figures["team_first_p95"].add(percentile(firsts, 0.95), percentile(direct_firsts, 0.95))
        group.figures["team_duration"].add(percentile(ratios, 0.5), percentile(direct_ratios, 0.5))
        group.figures["team_duration_p95"].add(percentile(ratios, 0.95), percentile(direct_ratios, 0.95))
        group.figures["team_faults"].add(faults, 0)
        group.figures["team_delay_p99"].add(
            percentile(delays, 0.99) * 1000, percentile(direct_delays, 0.99) * 1000
        )
        group.figures["team_frames"].add(sum(chat.frames for chat in chats) / len(chats))
    for key in ("team_first_p50", "team_duration", "team_delay_p99", "team_cpu"):
        group.figures[key].bound = bound_by(shares)


# -- point 6 ---------------------------------------------------------------------------------
async def idle_sockets(
    environment: Environment,
    double: DoubleProcess,
    cookies: list[str],
    figures: dict[str, Figure],
    notes: list[str],
    count: int,
) -> None:
    """Point 6: resident memory per idle open websocket, with `count` sockets open."""
    daphne = Daphne(environment, double).start()
    try:
        await asyncio.sleep(1.0)
        figures["idle_rss"].add(daphne.stats.rss_mb())
        limit = daphne.stats.fd_limit()
        if limit < count + 100:
            notes.append(f"daphne's open-file limit is {limit}, too low for {count} sockets")
        warm = await client.open_sockets(daphne.ws_url, cookies[:1], origin=daphne.url)
        await client.close_sockets(warm)
        await asyncio.sleep(0.5)
        before = daphne.stats.rss_mb()
        window = CpuWindow(daphne.stats).start()
        sockets = await client.open_sockets(
            daphne.ws_url,
            [cookies[index % len(cookies)] for index in range(count)],
            origin=daphne.url,
            timeout=300,
        )
        window.stop()
        await asyncio.sleep(1.0)
        after = daphne.stats.rss_mb()
        figures["socket_kb"].add((after - before) * 1024 / count)
        figures["socket_total"].add(after)
        figures["handshake_1000_cpu"].add(window.cpu / count * 1000)
        figures["fd_limit"].values = [limit]
        await client.close_sockets(sockets)
    finally:
        daphne.stop()


def chat_figures() -> dict[str, Figure]:
    """Return the empty figures of points 1–6, in table order."""
    server = "server"
    return {
        "relay_2000": Figure("1", "Relay, 2,000 tokens: tokens/s to the websocket", "tokens/s"),
        "relay_20000": Figure(
            "1",
            "Relay, 20,000 tokens: tokens/s to the websocket",
            "tokens/s",
            target="≥ 100,000",
            check=lambda value: value >= 100_000,
        ),
        "relay_first_2000": Figure("1", "Relay, 2,000 tokens: first token", "ms", digits=1),
        "relay_first_20000": Figure("1", "Relay, 20,000 tokens: first token", "ms", digits=1),
        "chat_cpu": Figure(
            "2",
            "Server CPU per new chat of one token (100 at once; incl. title request)",
            "ms",
            target="≤ 4",
            check=lambda value: value <= 4,
            digits=2,
            bound=server,
        ),
        "followup_cpu": Figure(
            "2", "Server CPU per follow-up chat of one token (100 at once)", "ms", digits=2, bound=server
        ),
        "chat_wall": Figure("2", "Wall time for the 100 chats (send → last done)", "s", digits=2),
        "handshake_cpu": Figure(
            "2", "Server CPU per websocket handshake (auth, session, user)", "ms", digits=2, bound=server
        ),
        "handshake_wall": Figure("2", "Wall time per handshake, 25 in parallel", "ms", digits=2),
        "burst_p50": Figure(
            "3",
            "Burst of 50, 500 tokens: first token p50",
            "ms",
            target="≤ 150",
            check=lambda value: value <= 150,
            digits=0,
        ),
        "burst_p95": Figure("3", "Burst of 50, 500 tokens: first token p95", "ms"),
        "team_first_p50": Figure("4", "Team of 200 at 50 tokens/s: first token p50", "ms"),
        "team_first_p95": Figure("4", "Team of 200 at 50 tokens/s: first token p95", "ms"),
        "team_duration": Figure(
            "4",
            "Team: stream duration ÷ the double's own, p50",
            "×",
            target="≤ 1.15",
            check=lambda value: value <= 1.15,
            digits=3,
        ),
        "team_duration_p95": Figure("4", "Team: stream duration ÷ the double's own, p95", "×", digits=3),
        "team_faults": Figure(
            "4",
            "Team: tokens lost, duplicated or out of order (all 200 replies)",
            "",
            target="0",
            check=lambda value: value == 0,
        ),
        "team_delay_p99": Figure(
            "4",
            "Team: added delay after the first token, p99",
            "ms",
            target="≤ 100",
            check=lambda value: value <= 100,
        ),
        "team_frames": Figure("4", "Team: frames per 200-token reply", "frames"),
        "team_cpu": Figure("4", "Team: server CPU", "% of a core"),
        "team_peak_rss": Figure(
            "4/6",
            "Team: server peak RSS",
            "MB",
            target="≤ 250",
            check=lambda value: value <= 250,
        ),
        "bytes_2000": Figure(
            "5",
            "Bytes on the wire ÷ reply length, 2,000 tokens",
            "×",
            target="≤ 1.5",
            check=lambda value: value <= 1.5,
            digits=3,
        ),
        "bytes_20000": Figure(
            "5",
            "Bytes on the wire ÷ reply length, 20,000 tokens",
            "×",
            target="≤ 1.5",
            check=lambda value: value <= 1.5,
            digits=3,
        ),
        "idle_rss": Figure(
            "6",
            "Server RSS idle after start",
            "MB",
            target="≤ 150",
            check=lambda value: value <= 150,
            digits=1,
        ),
        "socket_kb": Figure("6", "Server RSS per idle open websocket (1,000 open)", "KB", digits=1),
        "socket_total": Figure("6", "Server RSS with 1,000 idle sockets open", "MB", digits=1),
        "handshake_1000_cpu": Figure("6", "Server CPU per handshake while opening 1,000", "ms", digits=2),
        "fd_limit": Figure("6", "daphne's open-file limit", "files"),
    }


async def run_chat_points(
    environment: Environment,
    runs: int,
    quick: bool,
    points: set[str],
    figures: dict[str, Figure],
    notes: list[str],
) -> None:
    """Run points 1–6 (those in `points`), each group on a daphne of its own."""
    from tests.bench import world

    unpaced = DoubleProcess().start(environment.root)
    paced = DoubleProcess(tokens_per_second=TEAM_RATE).start(environment.root)
    try:
        team = 50 if quick else 200
        users = await asyncio.to_thread(world.users_create, team)
        cookies = await asyncio.to_thread(world.cookies_for, users)
        if points & {"1", "2", "3", "5"}:
            group = Group(environment, unpaced, cookies, figures, runs, notes)
            await group.start(sockets=min(100, team))
            try:
                if points & {"1", "5"}:
                    await relay(group)
                if "2" in points:
                    await per_chat_overhead(group, concurrency=min(100, team))
                if "3" in points:
                    await burst(group, conversations=min(50, team))
            finally:
                await group.stop()
        if points & {"4", "6"}:
            group = Group(environment, paced, cookies, figures, runs, notes)
            await group.start(sockets=team)
            try:
                await busy_team(group, conversations=team)
            finally:
                await group.stop()
        if "6" in points:
            for _run in range(runs):
                await idle_sockets(
                    environment, unpaced, cookies, figures, notes, count=200 if quick else 1000
                )
    finally:
        unpaced.stop()
        paced.stop()
