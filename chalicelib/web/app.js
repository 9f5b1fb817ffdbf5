// linklog's web app: a client of the public API, like any other.
//
// Reads go through /v1/links, /v1/tags, /v1/search and /v1/links/{id}; every
// change is an event pushed through /v1/sync/push. Text that comes from
// saved pages is only ever inserted as text (textContent), never as HTML.
"use strict";

const TOKEN_KEY = "linklog.token";
const CLIENT_ID = "web";
const PAGE_SIZE = 30;
const MAX_PAGE = 200;
const MAX_EVENTS_PER_PUSH = 500;
const POLL_MS = 1500;
const IDLE_REFRESH_MS = 20000;
const UNDO_MS = 10000;
const VIEWS = {
  unread: {title: "Unread", params: {archived: "false"}},
  archived: {title: "Archived", params: {archived: "true"}},
  all: {title: "All links", params: {}},
  failed: {title: "Failed", params: {status: "failed"}},
};
const STATUS_LABELS = {
  new: "Queued", pending: "Processing…", completed: "Ready", failed: "Failed", cancelled: "Cancelled",
};

const state = {
  view: "unread", tag: null, query: "",
  links: [], cursor: null, tags: [],
  selected: new Set(), readerId: null, undo: null, loading: false,
};

const $ = (id) => document.getElementById(id);

// Elements from plain data: ``text`` always goes in as text.
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "className") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

// Only http(s) addresses become links or images: a page's metadata could
// name javascript: or data: URLs.
function safeUrl(value) {
  if (typeof value !== "string") return null;
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch (_) {
    return null;
  }
}

function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const now = () => new Date().toISOString();

// --- Signing in --------------------------------------------------------

function takeTokenFromAddress() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    localStorage.setItem(TOKEN_KEY, fromHash);
    history.replaceState(null, "", location.pathname + location.search);
  }
}

const token = () => localStorage.getItem(TOKEN_KEY) || "";

class SignInNeeded extends Error {}

function askForToken(why) {
  const dialog = $("sign-in");
  $("sign-in-why").textContent = why;
  if (!dialog.open) {
    dialog.showModal();
    $("token-input").focus();
  }
}

$("sign-in-form").addEventListener("submit", (submitted) => {
  const value = $("token-input").value.trim();
  if (!value) { submitted.preventDefault(); return; }
  localStorage.setItem(TOKEN_KEY, value);
  $("token-input").value = "";
  signedIn();
});
$("sign-in").addEventListener("cancel", (event) => event.preventDefault());
$("sign-out").addEventListener("click", () => {
  localStorage.removeItem(TOKEN_KEY);
  askForToken("You signed out. Paste a token to sign in again.");
});

// --- The API -----------------------------------------------------------

async function api(path, options = {}) {
  if (!token()) {
    askForToken("linklog needs a token to show your links.");
    throw new SignInNeeded("no token");
  }
  const headers = {"Authorization": "Bearer " + token(), ...(options.headers || {})};
  const answer = await fetch(path, {...options, headers});
  if (answer.status === 401) {
    askForToken("Your token no longer works (it expired, or the server's secret changed). Paste a new one.");
    throw new SignInNeeded("token refused");
  }
  const type = answer.headers.get("Content-Type") || "";
  if (!type.includes("json")) {
    if (!answer.ok) throw new Error(`${answer.status} ${answer.statusText}`);
    return answer;
  }
  const body = await answer.json();
  if (!answer.ok) {
    const failure = new Error(body && body.error ? body.error.message : `${answer.status} ${answer.statusText}`);
    // A 422 names each bad field and what is wrong with it.
    failure.details = body && body.error && Array.isArray(body.error.details) ? body.error.details : [];
    throw failure;
  }
  return body;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined) search.set(key, value);
  }
  return search.toString();
}

const event = (name, args) => ({id: newId(), name, args, at: now()});

async function push(events) {
  for (let start = 0; start < events.length; start += MAX_EVENTS_PER_PUSH) {
    await api("/v1/sync/push", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({
        batch_id: newId(), client_id: CLIENT_ID,
        events: events.slice(start, start + MAX_EVENTS_PER_PUSH),
      }),
    });
  }
}

// The ids of the tags ``names`` name (existing ones by name, whatever the
// case), and the TagCreated events of those that do not exist yet.
function tagsNamed(names) {
  const events = [];
  const ids = [];
  for (const raw of names) {
    const name = raw.trim().replace(/\s+/g, " ");
    if (!name) continue;
    const existing = state.tags.find((tag) => tag.name.toLowerCase() === name.toLowerCase());
    if (existing) {
      ids.push(existing.id);
    } else {
      const created = event("v1.TagCreated", {id: newId(), name: name.slice(0, 200), createdAt: now()});
      state.tags.push({id: created.args.id, name: created.args.name, count: 0});
      events.push(created);
      ids.push(created.args.id);
    }
  }
  return {events, ids: [...new Set(ids)]};
}

const splitTags = (text) => text.split(",").map((name) => name.trim()).filter(Boolean);

// The one save path: the form, the bookmarklet and the share target all
// come here.
async function saveLink(url, tagNames) {
  const linkId = newId();
  const at = now();
  const tags = tagsNamed(tagNames);
  await push([
    event("v1.LinkCreated", {id: linkId, url, createdAt: at}),
    ...tags.events,
    ...tags.ids.map((tagId) => event("v1.LinkTagged", {id: newId(), linkId, tagId, createdAt: at})),
  ]);
  return linkId;
}

// --- Reading -------------------------------------------------------------

function viewParams() {
  if (state.tag) return {tag: state.tag};
  return VIEWS[state.view].params;
}

function viewTitle() {
  if (state.query) return `Search: ${state.query}`;
  if (state.tag) {
    const tag = state.tags.find((found) => found.id === state.tag);
    return `Tag: ${tag ? tag.name : state.tag}`;
  }
  return VIEWS[state.view].title;
}

async function loadTags() {
  // The side list shows every tag: all pages, the largest the API gives.
  const tags = [];
  let cursor = null;
  do {
    const answer = await api("/v1/tags?" + query({limit: 200, cursor}));
    tags.push(...answer.tags);
    cursor = answer.next_cursor;
  } while (cursor);
  state.tags = tags;
  renderTags();
}

let latestLoad = 0;

async function loadLinks({more = false, keep = false} = {}) {
  // Answers can arrive out of order (a view chosen while an action's
  // refresh is under way): only the newest request's answer is shown.
  const mine = ++latestLoad;
  state.loading = true;
  try {
    if (state.query) {
      const answer = await api("/v1/search?" + query({q: state.query, limit: 100}));
      if (mine !== latestLoad) return;
      state.links = answer.results.map((result) => ({...result.link, highlights: result.highlights}));
      state.cursor = null;
    } else {
      // A refresh (keep) reads again as many links as are shown, so the
      // list does not shrink back to one page under the user.
      const limit = keep ? Math.min(MAX_PAGE, Math.max(PAGE_SIZE, state.links.length)) : PAGE_SIZE;
      const params = {...viewParams(), limit, cursor: more ? state.cursor : null};
      const answer = await api("/v1/links?" + query(params));
      if (mine !== latestLoad) return;
      state.links = more ? state.links.concat(answer.links) : answer.links;
      state.cursor = answer.next_cursor;
    }
  } finally {
    if (mine === latestLoad) state.loading = false;
  }
  renderLinks();
}

async function reload() {
  try {
    await loadTags();
    await loadSettings();
    await loadLinks();
  } catch (error) {
    report(error);
  }
}

function say(message, isError = false) {
  const line = $("status-line");
  line.textContent = message;
  line.classList.toggle("error", isError);
}

function report(error) {
  if (error instanceof SignInNeeded) return;
  say(error.message || String(error), true);
}

// --- Rendering ---------------------------------------------------------

function renderTags() {
  const views = $("tag-views");
  views.replaceChildren(...state.tags.map((tag) => el("li", {},
    el("button", {
      type: "button", "aria-pressed": String(state.tag === tag.id), dataset: {tag: tag.id},
      onclick: () => chooseTag(tag.id),
    }, tag.name, el("span", {className: "count", text: `(${tag.count})`})))));
  $("tag-names").replaceChildren(...state.tags.map((tag) => el("option", {value: tag.name})));
  $("tag-manage").replaceChildren(...state.tags.map((tag) => el("li", {},
    el("span", {text: tag.name}),
    el("button", {type: "button", onclick: () => renameTag(tag)}, "Rename", el("span", {className: "skip", text: ` ${tag.name}`})),
    el("button", {type: "button", onclick: () => deleteTag(tag)}, "Delete", el("span", {className: "skip", text: ` ${tag.name}`})))));
}

function titleOf(link) {
  return (link.metadata && link.metadata.title) || link.url;
}

function domainOf(link) {
  if (link.domain) return link.domain;
  try { return new URL(link.url).hostname; } catch (_) { return ""; }
}

function statusBadge(link) {
  return el("span", {className: `badge ${link.status}`, text: STATUS_LABELS[link.status] || link.status});
}

function tagChips(link) {
  return el("ul", {className: "tags", "aria-label": "Tags"}, link.tags.map((tag) => el("li", {className: "chip"},
    el("span", {text: tag.name}),
    el("button", {
      type: "button", "aria-label": `Remove tag ${tag.name}`, title: `Remove tag ${tag.name}`,
      onclick: () => act(() => untag(link.id, tag.id), `Removed tag ${tag.name}`),
    }, "×"))));
}

function highlighted(pieces) {
  return el("p", {className: "snippet"},
    pieces.map(([text, isMatch]) => (isMatch ? el("mark", {text}) : document.createTextNode(text))));
}

function tagForm(link) {
  const inputId = `tag-${link.id}`;
  const input = el("input", {id: inputId, type: "text", list: "tag-names", required: true, autocomplete: "off"});
  return el("form", {
    className: "tag-form",
    onsubmit: (submitted) => {
      submitted.preventDefault();
      const names = splitTags(input.value);
      if (!names.length) return;
      input.value = "";
      act(() => tagLinks([link.id], names), `Tagged ${names.join(", ")}`);
    },
  }, el("label", {for: inputId, text: "Add a tag"}), input, el("button", {type: "submit"}, "Tag"));
}

function card(link) {
  const meta = link.metadata || {};
  const image = safeUrl(meta.image);
  const title = titleOf(link);
  const info = el("p", {className: "info"}, statusBadge(link),
    link.completed_at ? el("span", {className: "badge archived", text: "Archived"}) : null,
    link.reading_minutes ? el("span", {text: `${link.reading_minutes} min read`}) : null);
  const description = link.highlights
    ? highlighted(link.highlights)
    : meta.description ? el("p", {className: "description", text: meta.description.slice(0, 400)}) : null;
  const actions = el("div", {className: "actions"},
    link.completed_at
      ? el("button", {type: "button", onclick: () => act(() => setArchived([link.id], false), "Moved back to unread")}, "Unarchive")
      : el("button", {type: "button", onclick: () => act(() => setArchived([link.id], true), "Archived")}, "Archive"),
    link.status === "failed" || link.status === "cancelled"
      ? el("button", {type: "button", onclick: () => act(() => retry(link.id), "Trying again")}, "Retry")
      : null,
    el("button", {type: "button", onclick: () => deleteLinks([link])}, "Delete"));
  const select = el("input", {
    type: "checkbox", className: "select", "aria-label": `Select ${title}`,
    onchange: (changed) => { toggleSelected(link.id, changed.target.checked); },
  });
  select.checked = state.selected.has(link.id);
  return el("li", {className: "card", dataset: {id: link.id, status: link.status}},
    image ? el("img", {className: "thumb", src: image, alt: "", loading: "lazy", referrerpolicy: "no-referrer", onerror: (failed) => failed.target.remove()}) : null,
    el("div", {className: "body"},
      el("div", {className: "heading"}, select,
        el("h3", {}, el("button", {type: "button", className: "title-button", onclick: () => openReader(link.id), text: title}))),
      el("p", {className: "domain", text: domainOf(link)}),
      info,
      link.error && link.status === "failed" ? el("p", {className: "error", text: link.error.message}) : null,
      description,
      tagChips(link),
      tagForm(link),
      actions));
}

function renderLinks() {
  $("view-title").textContent = viewTitle();
  document.title = `${viewTitle()} · linklog`;
  for (const button of document.querySelectorAll("#views button")) {
    button.setAttribute("aria-pressed", String(!state.tag && !state.query && button.dataset.view === state.view));
  }
  for (const button of document.querySelectorAll("#tag-views button")) {
    button.setAttribute("aria-pressed", String(!state.query && button.dataset.tag === state.tag));
  }
  const focused = document.activeElement;
  const focusedInCards = $("cards").contains(focused);
  const list = $("cards");
  const existing = new Map([...list.children].map((item) => [item.dataset.id, item]));
  const items = state.links.map((link) => {
    const fingerprint = JSON.stringify(link) + state.selected.has(link.id);
    const old = existing.get(link.id);
    // Unchanged cards stay as they are, so polling does not take the
    // focus (or a half-typed tag) away from the user.
    if (old && old.dataset.fingerprint === fingerprint) return old;
    const fresh = card(link);
    fresh.dataset.fingerprint = fingerprint;
    return fresh;
  });
  list.replaceChildren(...items);
  if (focusedInCards && !list.contains(focused)) $("main").focus();
  $("empty").hidden = state.links.length > 0;
  $("empty").textContent = state.query ? "No saved page matches." : "Nothing here yet.";
  $("load-more").hidden = !state.cursor;
  state.selected = new Set([...state.selected].filter((id) => state.links.some((link) => link.id === id)));
  renderBulk();
}

function renderBulk() {
  const count = state.selected.size;
  $("bulk-bar").hidden = count === 0;
  $("bulk-count").textContent = `${count} selected`;
  $("select-all").checked = count > 0 && count === state.links.length;
}

function toggleSelected(linkId, on) {
  if (on) state.selected.add(linkId); else state.selected.delete(linkId);
  renderBulk();
}

// --- Actions -------------------------------------------------------------

async function act(action, done) {
  try {
    await action();
    if (done) say(done);
    await loadTags();
    await loadLinks({keep: true});
    if (state.readerId) await renderReader(state.readerId);
  } catch (error) {
    report(error);
  }
}

function setArchived(linkIds, archived) {
  return push(linkIds.map((id) => archived
    ? event("v1.LinkCompleted", {id, completedAt: now()})
    : event("v1.LinkUncompleted", {id})));
}

function retry(linkId) {
  return push([event("v1.LinkReprocessRequested", {linkId, requestedAt: now()})]);
}

function tagLinks(linkIds, names) {
  const tags = tagsNamed(names);
  const at = now();
  return push([
    ...tags.events,
    ...linkIds.flatMap((linkId) => tags.ids.map((tagId) => event("v1.LinkTagged", {id: newId(), linkId, tagId, createdAt: at}))),
  ]);
}

function untag(linkId, tagId) {
  return push([event("v2.LinkUntagged", {linkId, tagId})]);
}

async function deleteLinks(links) {
  const ids = links.map((link) => link.id);
  await act(() => push(ids.map((id) => event("v1.LinkDeleted", {id, deletedAt: now()}))));
  const what = links.length === 1 ? `“${titleOf(links[0])}”` : `${links.length} links`;
  offerUndo(`Deleted ${what}.`, () => push(ids.map((id) => event("v1.LinkRestored", {id}))));
}

function offerUndo(message, undo) {
  clearTimeout(state.undo && state.undo.timer);
  state.undo = {undo, timer: setTimeout(hideToast, UNDO_MS)};
  $("toast-text").textContent = message;
  $("toast").hidden = false;
  $("toast-undo").focus();
}

function hideToast() {
  $("toast").hidden = true;
  state.undo = null;
}

$("toast-undo").addEventListener("click", () => {
  const pending = state.undo;
  hideToast();
  if (pending) act(pending.undo, "Restored");
});

async function renameTag(tag) {
  const name = (prompt(`Rename the tag “${tag.name}” to:`, tag.name) || "").trim();
  if (!name || name === tag.name) return;
  act(() => push([event("v1.TagRenamed", {id: tag.id, name: name.slice(0, 200)})]), `Renamed to ${name}`);
}

async function deleteTag(tag) {
  if (!confirm(`Delete the tag “${tag.name}”? Links keep everything else.`)) return;
  if (state.tag === tag.id) state.tag = null;
  act(() => push([event("v1.TagDeleted", {id: tag.id, deletedAt: now()})]), `Deleted the tag ${tag.name}`);
}

// A suggested new tag is accepted as the org's tag of that name, made
// first when there is none.
function acceptSuggestion(suggestion) {
  if (!suggestion.new) return push([event("v1.TagSuggestionAccepted", {id: suggestion.id})]);
  const tag = tagsNamed([suggestion.tag_name]);
  return push([...tag.events, event("v1.TagSuggestionAccepted", {id: suggestion.id, tagId: tag.ids[0]})]);
}

function dismissSuggestion(suggestion) {
  return push([event("v1.TagSuggestionDismissed", {id: suggestion.id})]);
}

// --- The reader ------------------------------------------------------------

async function openReader(linkId) {
  state.readerId = linkId;
  $("reader-body").replaceChildren(el("p", {text: "Loading…"}));
  if (!$("reader").open) $("reader").showModal();
  try {
    await renderReader(linkId);
  } catch (error) {
    $("reader-body").replaceChildren(el("p", {className: "error", text: error.message}));
  }
  $("reader-close").focus();
}

function paragraphs(text) {
  return text.split(/\n+/).map((line) => line.trim()).filter(Boolean).map((line) => el("p", {text: line}));
}

async function renderReader(linkId) {
  const link = await api(`/v1/links/${encodeURIComponent(linkId)}`);
  if (state.readerId !== linkId) return;
  const meta = link.metadata || {};
  const original = safeUrl(link.url);
  const byline = [meta.site_name || domainOf(link), meta.author, meta.published_at,
    link.word_count ? `${link.word_count} words` : null,
    link.reading_minutes ? `${link.reading_minutes} min read` : null].filter(Boolean).join(" · ");
  const suggestions = link.suggestions.filter((suggestion) => suggestion.status === "suggested");
  $("reader-body").replaceChildren(...[
    el("h2", {id: "reader-title", text: titleOf(link)}),
    el("p", {className: "byline", text: byline}),
    el("p", {className: "info"}, statusBadge(link),
      link.completed_at ? el("span", {className: "badge archived", text: "Archived"}) : null),
    original ? el("p", {}, el("a", {href: original, target: "_blank", rel: "noopener noreferrer", text: "Open the original page"})) : null,
    link.error && link.status === "failed" ? el("p", {className: "error", text: link.error.message}) : null,
    tagChips(link),
    suggestions.length ? el("div", {className: "suggestions", role: "group", "aria-label": "Suggested tags"},
      el("span", {text: "Suggested tags:"}),
      suggestions.map((suggestion) => el("span", {className: "chip"},
        el("span", {text: suggestion.tag_name}),
        suggestion.new ? el("span", {className: "new-tag", text: "new"}) : null,
        el("button", {type: "button", onclick: () => act(() => acceptSuggestion(suggestion), `Tagged ${suggestion.tag_name}`)},
          "Accept", el("span", {className: "skip", text: ` ${suggestion.tag_name}`})),
        el("button", {type: "button", onclick: () => act(() => dismissSuggestion(suggestion), "Suggestion dismissed")},
          "Dismiss", el("span", {className: "skip", text: ` ${suggestion.tag_name}`}))))) : null,
    el("div", {className: "actions"},
      link.completed_at
        ? el("button", {type: "button", onclick: () => act(() => setArchived([link.id], false), "Moved back to unread")}, "Unarchive")
        : el("button", {type: "button", onclick: () => act(() => setArchived([link.id], true), "Archived")}, "Archive"),
      link.status === "failed" || link.status === "cancelled"
        ? el("button", {type: "button", onclick: () => act(() => retry(link.id), "Trying again")}, "Retry") : null),
    link.summary ? el("section", {className: "summary", "aria-label": "Summary"},
      el("h3", {text: summaryHeading(link)}), paragraphs(link.summary)) : null,
    link.text ? el("section", {className: "text", "aria-label": "Readable text"}, paragraphs(link.text))
      : el("p", {className: "hint", text: link.status === "completed" ? "No readable text was found on this page." : "The readable text appears once the page is processed."}),
  ].filter(Boolean));
}

// Who wrote the summary, as `linklog show` says it: the model, and the
// org's summarizer that failed (and why) when the offline one stood in.
function summaryHeading(link) {
  if (!link.summary_model) return "Summary";
  if (link.summary_fallback_from) {
    return `Summary (${link.summary_model}; ${link.summary_fallback_from} failed: ${link.summary_fallback_reason || "no reason given"})`;
  }
  return `Summary (${link.summary_model})`;
}

$("reader-close").addEventListener("click", () => $("reader").close());
$("reader").addEventListener("close", () => { state.readerId = null; });

// --- Choosing what to show ---------------------------------------------------

function chooseView(view) {
  state.view = view;
  state.tag = null;
  clearSearchBox();
  state.selected.clear();
  loadLinks().catch(report);
}

function chooseTag(tagId) {
  state.tag = tagId;
  clearSearchBox();
  state.selected.clear();
  loadLinks().catch(report);
}

function clearSearchBox() {
  state.query = "";
  $("search-q").value = "";
  $("search-clear").hidden = true;
}

for (const button of document.querySelectorAll("#views button")) {
  button.addEventListener("click", () => chooseView(button.dataset.view));
}

$("search-form").addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  state.query = $("search-q").value.trim();
  $("search-clear").hidden = !state.query;
  loadLinks().catch(report);
});
$("search-clear").addEventListener("click", () => { clearSearchBox(); loadLinks().catch(report); });

$("save-form").addEventListener("submit", async (submitted) => {
  submitted.preventDefault();
  const url = $("save-url").value.trim();
  const tags = splitTags($("save-tags").value);
  try {
    await saveLink(url, tags);
    $("save-url").value = "";
    $("save-tags").value = "";
    say("Saved. It is being processed…");
    if (state.view !== "unread" && state.view !== "all") chooseView("unread");
    await loadTags();
    await loadLinks({keep: true});
  } catch (error) {
    report(error);
  }
});

$("tag-create").addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  const name = $("tag-create-name").value.trim();
  if (!name) return;
  $("tag-create-name").value = "";
  act(() => push(tagsNamed([name]).events), `Created the tag ${name}`);
});

$("load-more").addEventListener("click", () => loadLinks({more: true}).catch(report));

$("select-all").addEventListener("change", (changed) => {
  state.selected = changed.target.checked ? new Set(state.links.map((link) => link.id)) : new Set();
  renderLinks();
});

for (const button of document.querySelectorAll("[data-bulk]")) {
  button.addEventListener("click", () => {
    const ids = [...state.selected];
    const kind = button.dataset.bulk;
    if (kind === "clear") { state.selected.clear(); renderLinks(); return; }
    if (!ids.length) return;
    state.selected.clear();
    if (kind === "delete") deleteLinks(state.links.filter((link) => ids.includes(link.id)));
    else act(() => setArchived(ids, kind === "archive"), kind === "archive" ? `Archived ${ids.length}` : `Unarchived ${ids.length}`);
  });
}

$("bulk-tag-form").addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  const names = splitTags($("bulk-tag").value);
  const ids = [...state.selected];
  if (!names.length || !ids.length) return;
  $("bulk-tag").value = "";
  act(() => tagLinks(ids, names), `Tagged ${ids.length} links ${names.join(", ")}`);
});

// --- Settings ----------------------------------------------------------------

const BEDROCK = "bedrock:";

function showSettings(settings) {
  const bedrock = settings.summarizer.startsWith(BEDROCK);
  $("settings-summarizer").value = bedrock ? "bedrock" : "extractive";
  $("settings-model").value = bedrock ? settings.summarizer.slice(BEDROCK.length) : "";
  $("settings-timeout").value = settings.summarizerTimeout;
  $("settings-new-tags").checked = settings.tagSuggestions === "existing+new";
  $("settings-bedrock").hidden = !bedrock;
  // Disabled until the org's settings are known: a choice made before
  // they arrive would be overwritten by them.
  $("settings-summarizer").disabled = false;
  $("settings-new-tags").disabled = false;
}

async function loadSettings() {
  showSettings((await api("/v1/settings")).settings);
}

$("settings-summarizer").addEventListener("change", () => {
  $("settings-bedrock").hidden = $("settings-summarizer").value !== "bedrock";
});

$("settings-form").addEventListener("submit", async (submitted) => {
  submitted.preventDefault();
  const bedrock = $("settings-summarizer").value === "bedrock";
  const changes = {
    summarizer: bedrock ? BEDROCK + $("settings-model").value.trim() : "extractive",
    tagSuggestions: $("settings-new-tags").checked ? "existing+new" : "existing",
  };
  if (bedrock) changes.summarizerTimeout = Number($("settings-timeout").value);
  const result = $("settings-result");
  result.classList.remove("error");
  try {
    const answer = await api("/v1/settings", {
      method: "PUT", headers: {"Content-Type": "application/json"}, body: JSON.stringify(changes),
    });
    showSettings(answer.settings);
    result.textContent = "Settings saved. Links saved from now on follow them.";
  } catch (error) {
    if (error instanceof SignInNeeded) return;
    const fields = (error.details || []).map((detail) => `${detail.path}: ${detail.message}`);
    result.textContent = `Not saved: ${fields.length ? fields.join("; ") : error.message}`;
    result.classList.add("error");
  }
});

// --- Import and export -------------------------------------------------------

$("import-form").addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  const file = $("import-file").files[0];
  if (!file) return;
  const progress = $("import-progress");
  const result = $("import-result");
  progress.hidden = false;
  progress.value = 0;
  result.textContent = `Uploading ${file.name}…`;
  // XMLHttpRequest, not fetch: it reports upload progress.
  const request = new XMLHttpRequest();
  request.open("POST", "/v1/import");
  request.setRequestHeader("Authorization", "Bearer " + token());
  request.setRequestHeader("Content-Type", "application/octet-stream");
  request.upload.addEventListener("progress", (moved) => {
    if (moved.lengthComputable) progress.value = Math.round((moved.loaded / moved.total) * 100);
  });
  request.upload.addEventListener("load", () => { result.textContent = "Uploaded; saving the links…"; });
  request.addEventListener("load", () => {
    progress.value = 100;
    let body = null;
    try { body = JSON.parse(request.responseText); } catch (_) { /* not JSON */ }
    if (request.status === 401) {
      askForToken("Your token no longer works. Paste a new one, then import again.");
      result.textContent = "";
    } else if (request.status >= 400 || !body) {
      result.textContent = `Import failed: ${body && body.error ? body.error.message : request.statusText}`;
    } else {
      result.textContent = `Imported ${body.saved} links from a ${body.format} file` +
        (body.duplicates ? `, ${body.duplicates} already saved` : "") +
        (body.refused ? `, ${body.refused} refused` : "") + ".";
      $("import-file").value = "";
      loadTags().then(() => loadLinks({keep: true})).catch(report);
    }
    progress.hidden = true;
  });
  request.addEventListener("error", () => { result.textContent = "Import failed: the server could not be reached."; progress.hidden = true; });
  request.send(file);
});

for (const button of document.querySelectorAll("[data-export]")) {
  button.addEventListener("click", async () => {
    const out = $("export-result");
    out.textContent = "Preparing the export…";
    try {
      const answer = await api("/v1/export?" + query({format: button.dataset.export}));
      // A large export is written to the store and answered with a link to it.
      if (answer.download_url) {
        const link = el("a", {href: answer.download_url, download: answer.filename, text: `Download ${answer.filename}`});
        out.replaceChildren(link);
        link.click();
        return;
      }
      const blob = await answer.blob();
      const name = (answer.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/);
      const filename = name ? name[1] : `linklog-export.${button.dataset.export}`;
      const link = el("a", {href: URL.createObjectURL(blob), download: filename, text: `Download ${filename}`});
      out.replaceChildren(link);
      link.click();
    } catch (error) {
      out.textContent = `Export failed: ${error.message}`;
    }
  });
}

// --- Saving from anywhere ------------------------------------------------------

function offerBookmarklet() {
  const share = `${location.origin}/share?url=`;
  const code = `javascript:(()=>{window.open(${JSON.stringify(share)}+encodeURIComponent(location.href)+'&title='+encodeURIComponent(document.title),'_blank','noopener')})()`;
  $("bookmarklet").setAttribute("href", code);
  $("bookmarklet").addEventListener("click", (clicked) => {
    clicked.preventDefault();
    say("Drag “Save to linklog” to your bookmarks bar, then click it on any page.");
  });
}

// The share target (and the bookmarklet) open /share?url=…&title=…&text=…;
// a phone's share sheet often puts the link in ``text``.
async function saveShared() {
  if (location.pathname !== "/share") return;
  const params = new URLSearchParams(location.search);
  const candidates = [params.get("url"), ...(params.get("text") || "").split(/\s+/)];
  const url = candidates.map(safeUrl).find(Boolean);
  history.replaceState(null, "", "/");
  if (!url) {
    say("The shared item held no web address to save.", true);
    return;
  }
  try {
    await saveLink(url, []);
    say(`Saved ${url}. It is being processed…`);
  } catch (error) {
    report(error);
  }
}

// --- Live status -----------------------------------------------------------------

let lastRefresh = 0;

// While links are being processed the list is read again every POLL_MS;
// otherwise now and then, for changes made elsewhere (another device).
async function poll() {
  const busy = state.links.some((link) => link.status === "new" || link.status === "pending");
  const due = busy || Date.now() - lastRefresh > IDLE_REFRESH_MS;
  if (due && !state.loading && !document.hidden && token() && !$("sign-in").open) {
    lastRefresh = Date.now();
    try {
      await loadLinks({keep: true});
      if (state.readerId) await renderReader(state.readerId);
    } catch (error) {
      report(error);
    }
  }
  setTimeout(poll, POLL_MS);
}

// What runs once there is a token: a shared link is saved first, so the
// list shows it.
async function signedIn() {
  await saveShared();
  await reload();
}

function start() {
  takeTokenFromAddress();
  offerBookmarklet();
  if (token()) signedIn();
  else askForToken("linklog needs a token to show your links.");
  setTimeout(poll, POLL_MS);
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(() => {});
}

start();
