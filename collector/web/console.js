// ioc-edge operator console: plain JavaScript, no build step. Data comes from /api/*;
// changes arrive live over server-sent events (/api/stream).
'use strict';

const L = {
  vi: {
    incidents: 'Sự cố', health: 'Tình trạng', charts: 'Biểu đồ', reports: 'Báo cáo', logout: 'Đăng xuất',
    heard: 'Cập nhật', clock: 'Đồng hồ', unknown: 'không rõ', last_said: 'lần cuối báo',
    broker_down: 'Trung tâm mất kết nối với máy chủ tin nhắn (MQTT): trạng thái dưới đây có thể đã cũ, sự cố mới chưa đến được',
    clock_off: 'lệch', clock_before_build: 'chưa đồng bộ', clock_jumped: 'vừa nhảy',
    hs_online: 'trực tuyến', hs_offline: 'mất kết nối', hs_streaming: 'đang truyền hình', hs_connecting: 'đang kết nối',
    hs_reconnecting: 'đang kết nối lại', hs_failed: 'lỗi', hs_tampered: 'bị che/phá', hs_stopped: 'đã dừng',
    state: 'Trạng thái', kind: 'Loại', site: 'Địa điểm', where: 'Vị trí', severity: 'Mức độ', age: 'Thời gian',
    all: 'Tất cả', active: 'Đang xử lý', more: 'Xem thêm', agents: 'Trạm (agent)', cameras: 'Camera',
    since: 'Từ lúc', version: 'Phiên bản', events: 'Sự kiện', open_incidents: 'Sự cố mở', days: 'Số ngày', detection: 'Phân tích (khung/s)', dropped: 'khung bỏ', latency: 'độ trễ',
    per_day: 'Sự cố theo loại mỗi ngày', per_hour: 'Sự cố theo giờ', counts: 'Lưu lượng theo vạch đếm',
    daily_report: 'Báo cáo ngày', date: 'Ngày', open_html: 'Mở báo cáo', download_csv: 'Tải CSV',
    st_open: 'Mới', st_acknowledged: 'Đã nhận', st_resolved: 'Đã xử lý', st_dismissed: 'Báo động giả',
    sev_critical: 'Khẩn cấp', sev_warning: 'Cảnh báo', sev_info: 'Thông tin',
    acknowledge: 'Nhận xử lý', resolve: 'Hoàn tất xử lý', dismiss: 'Báo động giả', reopen: 'Mở lại', note: 'Ghi chú',
    assign: 'Giao cho', assignee: 'Người phụ trách', save_note: 'Lưu ghi chú', close: 'Đóng', overdue: 'QUÁ HẠN', audit: 'Nhật ký',
    events_of: 'Sự kiện', no_snapshot: 'Không có ảnh', resolve_note: 'Ghi chú khi xử lý (không bắt buộc)',
    silenced: 'bảo trì', count_of: 'sự cố', live_on: 'Trực tiếp', live_off: 'Mất kết nối',
    silences: 'Bảo trì (tạm tắt cảnh báo)', until: 'Đến', reason: 'Lý do', add_silence: 'Tạm tắt', end_silence: 'Kết thúc',
    ago_s: 'giây trước', ago_m: 'phút trước', ago_h: 'giờ trước', ago_d: 'ngày trước',
    ongoing: 'Đang diễn ra', ended: 'Đã kết thúc', rule: 'Quy tắc', started: 'Bắt đầu', lasted: 'kéo dài',
    clip: 'Đoạn video', no_clip: 'Chưa có đoạn video', play_clip: 'Xem video',
    timeline: 'Diễn biến', more_events: 'và {n} lần khác', counts_hidden: '{n} lượt đếm qua vạch (xem Biểu đồ)',
    dur_s: 'giây', dur_m: 'phút', dur_h: 'giờ', site_ph: 'mã trạm', camera_ph: 'mã camera (* = tất cả)',
    a_opened: 'mở sự cố', a_acknowledge: 'nhận xử lý', a_resolve: 'hoàn tất xử lý', a_dismiss: 'đánh dấu báo động giả',
    a_reopen: 'mở lại', a_assign: 'giao việc', a_note: 'ghi chú', a_escalated: 'báo quá hạn', a_silence: 'tạm tắt cảnh báo',
    a_unsilence: 'kết thúc tạm tắt', ph_start: 'bắt đầu', ph_update: 'cập nhật', ph_end: 'kết thúc', ph_instant: 'tức thời',
    n_agent_back: 'trạm đã kết nối lại', n_camera_back: 'camera đã có hình trở lại',
    n_silenced: 'mở trong thời gian bảo trì', n_overdue: 'quá hạn xử lý (lần {n})', n_silence_ended: 'kết thúc bảo trì số {n}',
    pictures: 'Hình camera', get_picture: 'Lấy hình mới', getting_picture: 'Đang lấy hình…',
    no_picture: 'Chưa có hình: bấm "Lấy hình mới"', taken_at: 'Chụp lúc', objects_n: '{n} đối tượng',
    edit_zones: 'Sửa vùng & quy tắc', edit_title: 'Vùng & quy tắc', rules: 'Quy tắc', zone: 'Vùng', line: 'Vạch',
    edit_help: 'Chọn một vùng rồi bấm lên hình để thêm góc; kéo góc để sửa; bấm đúp vào góc để xoá. Vạch có đúng 2 điểm.',
    name: 'Tên', in_side: 'Phía "vào"', points_n: '{n} điểm', clear_points: 'Xoá các điểm', delete: 'Xoá',
    classes: 'Loại đối tượng', min_duration: 'Tối thiểu (giây)', min_count: 'Số lượng tối thiểu',
    advanced_json: 'Nâng cao (JSON, như [cameras.analytics] trong agent.toml)', apply_json: 'Dùng JSON này',
    json_object: 'cần một đối tượng JSON', save_push: 'Lưu và gửi xuống trạm', pushing: 'Đang gửi…',
    ed_no_state: 'Trạm chưa báo cấu hình đang chạy (trạm mất kết nối?)', ed_running_file: 'Camera đang chạy cấu hình trong tệp tại trạm',
    ed_running: 'Camera đang chạy phiên bản {n} (từ trung tâm)', ed_stored: 'Phiên bản mới nhất ở trung tâm: {n}',
    ed_refused: 'Trạm từ chối phiên bản {n}, vẫn chạy cấu hình cũ:', ed_applied: 'Đã áp dụng: camera đang chạy phiên bản {n}',
    ed_waiting: 'Đã lưu phiên bản {n}; trạm sẽ áp dụng khi kết nối lại', ed_invalid: 'Không lưu: cấu hình có lỗi, trạm không thể chạy',
    ed_site_ahead: 'Trạm đang chạy phiên bản {n}, mới hơn bản trung tâm đang giữ (cơ sở dữ liệu đã được khôi phục?); lần lưu tới sẽ đánh số cao hơn', ed_refused_see: 'Trạm từ chối phiên bản {n}: xem lỗi ở trên', in_mark: 'VÀO', side_left: 'trái', side_right: 'phải',
    system: 'hệ thống', c_person: 'người', c_bicycle: 'xe đạp', c_car: 'ô tô', c_motorcycle: 'xe máy', c_bus: 'xe buýt', c_truck: 'xe tải',
  },
  en: {
    incidents: 'Incidents', health: 'Health', charts: 'Charts', reports: 'Reports', logout: 'Log out',
    heard: 'Last heard', clock: 'Clock', unknown: 'unknown', last_said: 'last said',
    broker_down: 'The center is cut off from the message broker (MQTT): the states below may be stale and new incidents cannot arrive',
    clock_off: 'off by', clock_before_build: 'not synchronised', clock_jumped: 'just jumped',
    hs_online: 'online', hs_offline: 'offline', hs_streaming: 'streaming', hs_connecting: 'connecting',
    hs_reconnecting: 'reconnecting', hs_failed: 'failed', hs_tampered: 'tampered', hs_stopped: 'stopped',
    state: 'State', kind: 'Kind', site: 'Site', where: 'Where', severity: 'Severity', age: 'When',
    all: 'All', active: 'Active', more: 'More', agents: 'Agents', cameras: 'Cameras',
    since: 'Since', version: 'Version', events: 'Events', open_incidents: 'Open incidents', days: 'Days', detection: 'Analysed (fps)', dropped: 'dropped', latency: 'latency',
    per_day: 'Incidents per kind per day', per_hour: 'Incidents per hour', counts: 'Traffic counts per line',
    daily_report: 'Daily report', date: 'Date', open_html: 'Open report', download_csv: 'Download CSV',
    st_open: 'Open', st_acknowledged: 'Acknowledged', st_resolved: 'Resolved', st_dismissed: 'False alarm',
    sev_critical: 'Critical', sev_warning: 'Warning', sev_info: 'Info',
    acknowledge: 'Acknowledge', resolve: 'Resolve', dismiss: 'False alarm', reopen: 'Reopen', note: 'Note',
    assign: 'Assign to', assignee: 'Assignee', save_note: 'Save note', close: 'Close', overdue: 'OVERDUE', audit: 'Audit trail',
    events_of: 'Events', no_snapshot: 'No snapshot', resolve_note: 'Resolution note (optional)',
    silenced: 'maintenance', count_of: 'incidents', live_on: 'Live', live_off: 'Disconnected',
    silences: 'Maintenance silences', until: 'Until', reason: 'Reason', add_silence: 'Silence', end_silence: 'End',
    ago_s: 's ago', ago_m: 'min ago', ago_h: 'h ago', ago_d: 'd ago',
    ongoing: 'Ongoing', ended: 'Ended', rule: 'Rule', started: 'Started', lasted: 'lasted',
    clip: 'Video clip', no_clip: 'No video clip yet', play_clip: 'Play clip',
    timeline: 'Timeline', more_events: 'and {n} more', counts_hidden: '{n} line counts (see Charts)',
    dur_s: 's', dur_m: 'min', dur_h: 'h', site_ph: 'site id', camera_ph: 'camera id (* = all)',
    a_opened: 'opened', a_acknowledge: 'acknowledged', a_resolve: 'resolved', a_dismiss: 'marked a false alarm',
    a_reopen: 'reopened', a_assign: 'assigned', a_note: 'noted', a_escalated: 'escalated', a_silence: 'silenced',
    a_unsilence: 'ended a silence', ph_start: 'start', ph_update: 'update', ph_end: 'end', ph_instant: 'instant',
    n_agent_back: 'the agent is back online', n_camera_back: 'the camera is streaming again',
    n_silenced: 'opened during a maintenance silence', n_overdue: 'open past its deadline ({n}x)', n_silence_ended: 'silence {n} ended',
    pictures: 'Camera pictures', get_picture: 'Get current picture', getting_picture: 'Getting the picture…',
    no_picture: 'No picture yet: press "Get current picture"', taken_at: 'Taken at', objects_n: 'objects: {n}',
    edit_zones: 'Edit zones & rules', edit_title: 'Zones & rules', rules: 'Rules', zone: 'Zone', line: 'Line',
    edit_help: 'Choose a zone, then click the picture to add corners; drag a corner to move it; double-click a corner to remove it. A line has exactly 2 points.',
    name: 'Name', in_side: '"In" side', points_n: '{n} points', clear_points: 'Clear points', delete: 'Delete',
    classes: 'Classes', min_duration: 'At least (s)', min_count: 'At least (count)',
    advanced_json: 'Advanced (JSON, as [cameras.analytics] in agent.toml)', apply_json: 'Use this JSON',
    json_object: 'needs a JSON object', save_push: 'Save and push to the site', pushing: 'Pushing…',
    ed_no_state: 'The site has not said what it runs (agent offline?)', ed_running_file: 'The camera runs the site file\'s analytics',
    ed_running: 'The camera runs version {n} (from the center)', ed_stored: 'Newest version at the center: {n}',
    ed_refused: 'The site refused version {n} and keeps what it ran:', ed_applied: 'Applied: the camera runs version {n}',
    ed_waiting: 'Stored as version {n}; the site applies it when it is back', ed_invalid: 'Not stored: no site could run these analytics',
    ed_site_ahead: 'The site runs version {n}, newer than the one this center keeps (was its database restored?); the next save is numbered above it', ed_refused_see: 'The site refused version {n}: see the problems above', in_mark: 'IN', side_left: 'left', side_right: 'right',
    system: 'system', c_person: 'person', c_bicycle: 'bicycle', c_car: 'car', c_motorcycle: 'motorcycle', c_bus: 'bus', c_truck: 'truck',
  },
};
let lang = localStorage.getItem('ioc.lang') || 'vi';
const t = (k, n) => ((L[lang] && L[lang][k]) || L.en[k] || k).replace('{n}', n);
const kindLabel = (k) => (L[lang]['k_' + k] || L.en['k_' + k] || k);
const classLabel = (c) => (L[lang]['c_' + c] || c);
const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
  return e;
};

const state = { me: null, incidents: new Map(), next: null, view: 'incidents', selected: null };
// Names for people from the agents' and cameras' statuses (health); ids where none is known.
const names = { sites: new Map(), cameras: new Map() };
const siteName = (site) => names.sites.get(site) || site;
const cameraName = (site, cam) => names.cameras.get(site + '/' + cam) || cam;
const whereText = (i) => [siteName(i.site), i.camera ? cameraName(i.site, i.camera) : '', i.place].filter(Boolean).join(' / ');
const whereIds = (i) => [i.site, i.camera, i.place].filter(Boolean).join(' / ');
const label = (prefix, v) => (L[lang][prefix + v] || L.en[prefix + v] || v);

// Times on the district's clock (UTC shifted by its offset, read back as UTC: the browser's
// own zone plays no part), day first as people write it here: 14:02 01/12/2026.
const pad = (n) => String(n).padStart(2, '0');
const local = (x) => new Date((typeof x === 'number' ? x : Date.parse(x)) + (state.me ? state.me.utc_offset_minutes : 0) * 60000);
const fmtTime = (x) => { const d = local(x); return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`; };
const fmtTimeS = (x) => `${fmtTime(x)}:${pad(local(x).getUTCSeconds())}`;
const fmtDate = (x) => { const d = local(x); return `${pad(d.getUTCDate())}/${pad(d.getUTCMonth() + 1)}/${d.getUTCFullYear()}`; };
const fmtDateTime = (x) => `${fmtTimeS(x)} ${fmtDate(x)}`;
function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} ${t('dur_s')}`;
  if (s < 3600) return `${Math.floor(s / 60)} ${t('dur_m')}` + (s % 60 ? ` ${s % 60} ${t('dur_s')}` : '');
  return `${Math.floor(s / 3600)} ${t('dur_h')}` + (Math.floor(s / 60) % 60 ? ` ${Math.floor(s / 60) % 60} ${t('dur_m')}` : '');
}

async function api(path, opts = {}) {
  const r = await fetch(path, {
    ...opts,
    headers: opts.body ? { 'Content-Type': 'application/json' } : {},
    credentials: 'same-origin',
  });
  if (r.status === 401) { location.href = '/login'; throw new Error('logged out'); }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    const err = new Error(body.error || ('HTTP ' + r.status));
    err.problems = body.problems; // every problem by key, when the server lists them
    throw err;
  }
  return body;
}

function translate() {
  document.documentElement.lang = lang;
  for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
  for (const e of document.querySelectorAll('[data-i18n-placeholder]')) e.placeholder = t(e.dataset.i18nPlaceholder);
  $('#lang').value = lang;
}

function age(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return Math.floor(s) + ' ' + t('ago_s');
  if (s < 3600) return Math.floor(s / 60) + ' ' + t('ago_m');
  if (s < 86400) return Math.floor(s / 3600) + ' ' + t('ago_h');
  return Math.floor(s / 86400) + ' ' + t('ago_d');
}

// A line crossing at severity info is a count: it belongs on the charts, not in the queue,
// unless its rule raised it higher or the operator asks for line crossings.
const isCount = (i) => i.kind === 'line_crossing' && i.severity === 'info';

function matchesFilter(i, withCounts) {
  const st = $('#f-state').value, kind = $('#f-kind').value, site = $('#f-site').value;
  if (st && !st.split(',').includes(i.state)) return false;
  if (kind && i.kind !== kind) return false;
  if (site && i.site !== site) return false;
  if (!withCounts && isCount(i) && kind !== 'line_crossing') return false;
  return !i.silenced;
}

function updateCount() {
  const shown = $('#incidents tbody').children.length;
  const counts = [...state.incidents.values()].filter((i) => isCount(i) && !matchesFilter(i) && matchesFilter(i, true)).length;
  $('#count').textContent = shown + ' ' + t('count_of') + (counts ? ' · ' + t('counts_hidden', counts) : '');
}

function actionButtons(i) {
  const can = state.me && state.me.role !== 'viewer';
  if (!can) return el('span');
  const box = el('span', { class: 'actions' });
  const btn = (action, primary) => el('button', {
    class: 'act' + (primary ? ' primary' : ''), 'data-action': action, 'data-id': i.id,
    onclick: (ev) => { ev.stopPropagation(); onAction(i.id, action); },
  }, t(action));
  if (i.state === 'open') box.append(btn('acknowledge', true), ' ');
  if (i.state === 'open' || i.state === 'acknowledged') box.append(btn('resolve'), ' ', btn('dismiss'));
  if (i.state === 'resolved' || i.state === 'dismissed') box.append(btn('reopen'));
  return box;
}

// Whether the condition still holds on the site (no end yet) or is over.
const activity = (i) => el('span', { class: 'activity ' + (i.active ? 'on' : 'off') }, i.active ? t('ongoing') : t('ended'));

function row(i) {
  const thumb = i.snapshot
    ? snapshotImg(i, { class: 'thumb', alt: '', loading: 'lazy' }, () => el('div', { class: 'thumb' }))
    : el('div', { class: 'thumb' });
  const tr = el('tr', { class: 'incident' + (i.overdue ? ' overdue' : ''), 'data-id': i.id, 'data-state': i.state, onclick: () => openDetail(i.id) },
    el('td', { class: 'thumb-cell' }, thumb),
    el('td', { class: 'kind' }, el('div', {}, kindLabel(i.kind), i.event_count > 1 ? el('span', { class: 'muted' }, ' ×' + i.event_count) : null, ' ', activity(i)),
      i.rule ? el('div', { class: 'muted rule' }, i.rule) : null),
    el('td', { class: 'where', title: whereIds(i) }, whereText(i)),
    el('td', { class: 'sev' }, el('span', { class: 'badge sev-' + i.severity }, t('sev_' + i.severity))),
    el('td', { class: 'state' }, el('span', { class: 'badge st-' + i.state }, t('st_' + i.state))),
    el('td', { class: 'age', title: age(i.first_at) }, el('div', { class: 'clock' }, fmtTime(i.first_at) + ' ' + fmtDate(i.first_at)),
      el('div', { class: 'muted' }, age(i.first_at), i.overdue ? el('span', { class: 'overdue-mark' }, ' ' + t('overdue')) : null)),
    el('td', { class: 'actions-cell' }, actionButtons(i)));
  return tr;
}

function renderList() {
  const body = $('#incidents tbody');
  body.replaceChildren();
  const list = [...state.incidents.values()].filter(matchesFilter).sort((a, b) => b.id - a.id);
  for (const i of list) body.append(row(i));
  updateTitle();
  updateCount();
  $('#more').classList.toggle('hidden', !state.next);
}

function upsert(i, fresh) {
  const old = state.incidents.get(i.id);
  state.incidents.set(i.id, i);
  if (state.selected === i.id) openDetail(i.id);
  const body = $('#incidents tbody');
  const existing = body.querySelector(`tr[data-id="${i.id}"]`);
  if (!matchesFilter(i)) {
    if (existing) existing.remove();
    updateCount();
    return;
  }
  const tr = row(i);
  if (fresh || !old) tr.classList.add('fresh');
  if (existing) existing.replaceWith(tr);
  else {
    const later = [...body.children].find((r) => Number(r.dataset.id) < i.id);
    body.insertBefore(tr, later || null);
  }
  updateCount();
}

// An incident can arrive before its snapshot (they travel apart): on a miss, try again a
// little later, then show the placeholder instead of a broken image.
function snapshotImg(i, attrs, placeholder) {
  const url = '/api/snapshots/' + encodeURIComponent(i.site) + '/' + encodeURIComponent(i.snapshot);
  let tries = 0;
  return el('img', { ...attrs, src: url, onerror: (ev) => {
    const img = ev.target;
    if (++tries <= 6) setTimeout(() => { img.src = url + '?try=' + tries; }, 4000 * tries);
    else img.replaceWith(placeholder());
  } });
}

async function loadIncidents(append) {
  const q = new URLSearchParams();
  if ($('#f-state').value) q.set('state', $('#f-state').value);
  if ($('#f-kind').value) q.set('kind', $('#f-kind').value);
  if ($('#f-site').value) q.set('site', $('#f-site').value);
  q.set('limit', '100');
  if (append && state.next) q.set('before_id', state.next);
  const r = await api('/api/incidents?' + q);
  if (!append) state.incidents.clear();
  for (const i of r.incidents) state.incidents.set(i.id, i);
  state.next = r.next_before_id;
  renderList();
}

async function onAction(id, action, note) {
  try {
    if (action === 'resolve' && note === undefined) { openDetail(id, true); return; }
    const body = {};
    if (note) body.note = note;
    const r = await api(`/api/incidents/${id}/${action}`, { method: 'POST', body: JSON.stringify(body) });
    upsert(r.incident);
  } catch (e) { alert(e.message); }
}

async function openDetail(id, focusResolve) {
  state.selected = id;
  ed.site = null; // the editor, if it was open, is closed by this
  const d = await api('/api/incidents/' + id);
  const i = d.incident;
  const pane = $('#detail');
  const snap = i.snapshot
    ? snapshotImg(i, { alt: kindLabel(i.kind) }, () => el('p', { class: 'muted' }, t('no_snapshot')))
    : el('p', { class: 'muted' }, t('no_snapshot'));
  const clip = clipPlayer(i, d.events);
  const note = el('textarea', { id: 'note', placeholder: focusResolve ? t('resolve_note') : t('note') });
  const can = state.me && state.me.role !== 'viewer';
  const buttons = el('p');
  if (can) {
    const b = (action, label, withNote) => el('button', {
      class: 'act', 'data-action': action,
      onclick: () => onAction(id, action, withNote ? note.value : undefined).then(() => { if (action !== 'note') note.value = ''; }),
    }, label);
    if (i.state === 'open') buttons.append(b('acknowledge', t('acknowledge')), ' ');
    if (i.state === 'open' || i.state === 'acknowledged') buttons.append(b('resolve', t('resolve'), true), ' ', b('dismiss', t('dismiss'), true), ' ');
    if (i.state === 'resolved' || i.state === 'dismissed') buttons.append(b('reopen', t('reopen')), ' ');
    buttons.append(b('note', t('save_note'), true));
  }
  const stateName = (s) => (s ? t('st_' + s) : '');
  const audit = el('ol', { class: 'audit', id: 'audit' }, ...d.audit.map((a) => el('li', { 'data-action': a.action },
    fmtDateTime(a.at), ' — ', el('b', {}, a.actor === 'system' ? t('system') : a.actor), ' ', label('a_', a.action),
    a.to_state && a.from_state !== a.to_state
      ? (a.from_state ? ` (${stateName(a.from_state)} → ${stateName(a.to_state)})` : ` (${stateName(a.to_state)})`) : '',
    a.note ? el('div', { class: 'muted' }, noteText(a.note)) : null)));
  const lasted = Date.parse(i.last_at) - Date.parse(i.first_at);
  const span = i.active ? t('ongoing')
    : lasted >= 1000 ? `${fmtTimeS(i.last_at)} · ${t('lasted')} ${duration(lasted)}` : t('ended');
  pane.replaceChildren(
    el('p', {}, el('button', { class: 'act', onclick: closeDetail }, t('close'))),
    el('h2', {}, `#${i.id} ${kindLabel(i.kind)}`, i.overdue ? el('span', { class: 'overdue-mark' }, ' ' + t('overdue')) : null),
    el('p', {}, el('span', { class: 'badge st-' + i.state, id: 'detail-state' }, t('st_' + i.state)), ' ',
      el('span', { class: 'badge sev-' + i.severity }, t('sev_' + i.severity)), ' ', activity(i)),
    el('p', { class: 'facts' }, el('b', { title: whereIds(i) }, whereText(i)),
      i.rule ? el('span', {}, el('br'), `${t('rule')}: ${i.rule}`) : null, el('br'),
      `${t('started')} ${fmtDateTime(i.first_at)} → ${span}`, el('span', { class: 'muted' }, ` (${age(i.first_at)})`),
      i.assignee ? el('span', {}, el('br'), `${t('assignee')}: ${i.assignee}`) : null,
      i.silenced ? el('span', {}, el('br'), t('silenced')) : null),
    clip || snap, clip || i.source === 'health' ? '' : el('p', { class: 'muted', id: 'no-clip' }, t('no_clip')),
    can ? note : '', buttons,
    el('h3', {}, t('timeline')), timeline(d.events, i),
    el('h3', {}, t('audit')), audit);
  pane.classList.add('open');
  if (focusResolve) note.focus();
}

// The system's own audit notes, in the reader's language.
function noteText(n) {
  const fixed = { 'the agent is back online': 'n_agent_back', 'the camera is streaming again': 'n_camera_back',
    'opened during a maintenance silence': 'n_silenced' };
  if (fixed[n]) return t(fixed[n]);
  let m = /^open past its deadline \((\d+)x\)$/.exec(n);
  if (m) return t('n_overdue', m[1]);
  m = /^silence (\d+) ended$/.exec(n);
  if (m) return t('n_silence_ended', m[1]);
  return n;
}

function clipUrl(site, eventId) {
  return '/api/clips/' + encodeURIComponent(site) + '/' + encodeURIComponent(eventId);
}

// The clip of the moment the incident's picture shows (else its first clip), with that
// picture (boxes and labels) as its poster: one look says what fired, one click shows what
// happened around it. `null` until a clip has arrived. A re-render of the same incident (a
// live update) keeps the player, so a clip being watched goes on.
function clipPlayer(i, events) {
  const withClip = events.filter((e) => e.has_clip);
  if (!withClip.length) return null;
  const pick = withClip.find((e) => e.event_id === i.snapshot) || withClip[0];
  const src = clipUrl(i.site, pick.event_id);
  const old = $('#clip');
  if (old && old.dataset.incident === String(i.id)) return old.parentNode;
  // The picture is a poster only for its own moment's clip.
  const poster = pick.event_id === i.snapshot
    ? '/api/snapshots/' + encodeURIComponent(i.site) + '/' + encodeURIComponent(i.snapshot) : undefined;
  const video = el('video', { id: 'clip', controls: '', muted: '', playsinline: '', preload: 'metadata',
    'data-incident': String(i.id), 'data-event': pick.event_id, src, poster, title: t('clip') });
  video.muted = true;
  return el('figure', { class: 'clip' }, video);
}

// One line per agent incident (its start/update/end messages folded together): when, how
// long, what was seen, and its clip. A busy zone gives dozens; the first few show, the
// rest fold away.
function timeline(events, incident) {
  const groups = new Map();
  for (const e of events) {
    const ev = e.event || {};
    const g = groups.get(e.event_id) || { id: e.event_id, first: Infinity, last: -Infinity, ended: false, classes: new Set(), count: 0, clip: false };
    g.clip = g.clip || e.has_clip;
    for (const x of [e.observed_at, ev.started_at, ev.ended_at]) {
      const ms = x ? Date.parse(x) : NaN;
      if (!Number.isNaN(ms)) { g.first = Math.min(g.first, ms); g.last = Math.max(g.last, ms); }
    }
    if (e.phase === 'end' || e.phase === 'instant') g.ended = true;
    for (const o of ev.objects || []) g.classes.add(o.class);
    const n = ev.details && ev.details.count;
    if (n) g.count = Math.max(g.count, n);
    groups.set(e.event_id, g);
  }
  const items = [...groups.values()].sort((a, b) => a.first - b.first).map((g) => {
    const what = [...g.classes].map(classLabel).join(', ') + (g.count > 1 ? ` ×${g.count}` : '');
    const when = g.last > g.first + 999
      ? `${fmtTimeS(g.first)} → ${g.ended ? `${fmtTimeS(g.last)} (${duration(g.last - g.first)})` : t('ongoing')}`
      : fmtTimeS(g.first) + (g.ended ? '' : ' → ' + t('ongoing'));
    const play = g.clip ? el('button', { class: 'act play', title: t('play_clip'), 'data-event': g.id, onclick: (ev) => {
      ev.stopPropagation();
      const v = $('#clip');
      if (!v) return;
      v.src = clipUrl(incident.site, g.id);
      v.dataset.event = g.id;
      v.play().catch(() => {});
    } }, '▶') : null;
    return el('li', {}, when, what ? el('span', { class: 'muted' }, ' · ' + what) : null, play ? ' ' : null, play);
  });
  const SHOWN = 8;
  const list = el('ol', { class: 'timeline', id: 'timeline' }, ...items.slice(0, SHOWN));
  if (items.length > SHOWN) {
    list.append(el('li', { class: 'more' }, el('details', {}, el('summary', {}, t('more_events', items.length - SHOWN)),
      el('ol', {}, ...items.slice(SHOWN)))));
  }
  return list;
}

function closeDetail() { state.selected = null; $('#detail').classList.remove('open'); }

// "4.8 / 5", marked when the agent cannot keep up; drops and latency in the tooltip.
function detectionCell(c) {
  if (c.detect_fps == null) return el('td', {}, '');
  const target = c.target_fps == null ? '' : ' / ' + c.target_fps.toFixed(0);
  const low = c.target_fps != null && c.detect_fps < 0.8 * c.target_fps;
  const tip = [c.dropped == null ? null : c.dropped + ' ' + t('dropped'),
    c.detect_latency_ms == null ? null : t('latency') + ' ' + Math.round(c.detect_latency_ms) + ' ms'].filter(Boolean).join(', ');
  return el('td', { class: low ? 'state-reconnecting' : '', title: tip }, c.detect_fps.toFixed(1) + target);
}

// A state the collector cannot vouch for (not confirmed within its heartbeat) is shown as
// unknown, with what it last was, never in green.
function stateCell(x, extra) {
  const stale = x.state === 'unknown';
  const name = (s) => (L[lang]['hs_' + s] || L.en['hs_' + s] || s);
  const tip = [stale ? `${t('last_said')}: ${name(x.last_state)}` : null, extra].filter(Boolean).join(' · ');
  return el('td', { class: 'state-' + x.state, title: tip }, stale ? t('unknown') : name(x.state));
}

function clockCell(a) {
  const skew = a.clock_skew_ms;
  const off = skew != null && Math.abs(skew) > 60000;
  const text = a.clock && a.clock !== 'ok' ? t('clock_' + a.clock)
    : off ? `${t('clock_off')} ${skew > 0 ? '+' : '−'}${Math.round(Math.abs(skew) / 1000)} s`
    : (skew == null ? '' : 'ok');
  return el('td', { class: text && text !== 'ok' ? 'state-reconnecting' : '' }, text);
}

function showBroker(h) {
  const b = h.collector && h.collector.broker;
  const down = b && b.state !== 'connected' && b.state !== 'not_running';
  const banner = $('#broker-banner');
  banner.classList.toggle('hidden', !down);
  banner.textContent = down ? t('broker_down') + (b.error ? ` (${b.error})` : '') : '';
}

// A name with its id beneath, when the two differ.
const named = (name, id) => el('td', { title: id }, name || id, name && name !== id ? el('div', { class: 'muted id' }, id) : null);

// On a phone each table row becomes a card: every cell says what it is (its column's header).
function labelCells(table) {
  const heads = [...table.querySelectorAll('thead th')].map((th) => th.textContent);
  for (const tr of table.querySelectorAll('tbody tr')) {
    [...tr.children].forEach((td, k) => { if (heads[k]) td.dataset.label = heads[k]; });
  }
}

// Remembers the names the statuses carry; true when one changed (the list shows them).
function learnNames(h) {
  let changed = false;
  const put = (map, key, name) => { if (name && map.get(key) !== name) { map.set(key, name); changed = true; } };
  for (const a of h.agents) put(names.sites, a.site, a.name);
  for (const c of h.cameras) put(names.cameras, c.site + '/' + c.camera, c.name);
  return changed;
}

function refreshNames() {
  api('/api/health').then((h) => { showBroker(h); if (learnNames(h)) renderList(); }).catch(() => {});
}

async function loadHealth() {
  const h = await api('/api/health');
  showBroker(h);
  if (learnNames(h)) renderList();
  const since = (s) => (s ? age(s) : '');
  $('#agents tbody').replaceChildren(...h.agents.map((a) => el('tr', {},
    named(a.name, a.site), stateCell(a), el('td', {}, since(a.since)), el('td', {}, since(a.heard_at)),
    clockCell(a), el('td', {}, a.version), el('td', {}, String(a.events)))));
  $('#cameras tbody').replaceChildren(...h.cameras.map((c) => el('tr', {},
    named(names.sites.get(c.site), c.site), named(c.name, c.camera), stateCell(c, c.error),
    el('td', {}, c.fps == null ? '' : c.fps.toFixed(1)), detectionCell(c), el('td', {}, since(c.since)),
    el('td', {}, since(c.heard_at)), el('td', {}, String(c.open_incidents)))));
  labelCells($('#agents'));
  labelCells($('#cameras'));
  renderPictures(h.cameras);
  const sel = $('#f-site');
  for (const site of [...new Set(h.agents.map((a) => a.site))].sort()) {
    const o = [...sel.options].find((x) => x.value === site) || sel.appendChild(el('option', { value: site }));
    o.textContent = siteName(site);
  }
  await loadSilences();
}

// The camera wall: each camera's latest preview (sent by its agent on request, or
// periodically where the site turned that on), with what the detector saw on it.
const SVG_NS = 'http://www.w3.org/2000/svg';

function renderPictures(cameras) {
  const wall = $('#pictures');
  const tiles = cameras.map((c) => {
    const key = c.site + '/' + c.camera;
    const fig = [...wall.children].find((f) => f.dataset.camera === key) || el('figure', { class: 'pv', 'data-camera': key },
      el('div', { class: 'pv-pic' }),
      el('figcaption', {}, el('b', {}), ' ', el('span', { class: 'muted pv-when' }), ' ',
        el('button', { class: 'act operator-only pv-get', onclick: () => askPicture(c.site, c.camera, fig) }, t('get_picture')), ' ',
        el('button', { class: 'act pv-edit hidden', onclick: () => openEditor(c.site, c.camera).catch((e) => alert(e.message)) }, t('edit_zones')),
        el('div', { class: 'pv-error' })));
    fig.querySelector('b').textContent = siteName(c.site) + ' / ' + cameraName(c.site, c.camera);
    fig.querySelector('.pv-get').textContent = t('get_picture');
    if (state.me && state.me.role === 'viewer') fig.querySelector('.pv-get').classList.add('hidden');
    fig.querySelector('.pv-edit').textContent = t('edit_zones');
    fig.querySelector('.pv-edit').classList.toggle('hidden', !(state.me && state.me.role === 'admin'));
    api(`/api/cameras/${encodeURIComponent(c.site)}/${encodeURIComponent(c.camera)}/preview`)
      .then((m) => drawPicture(fig, m)).catch(() => { if (!fig.dataset.shown) drawPicture(fig, null); });
    return fig;
  });
  wall.replaceChildren(...tiles);
}

function drawPicture(fig, m) {
  const pic = fig.querySelector('.pv-pic');
  const when = fig.querySelector('.pv-when');
  if (!m) {
    pic.replaceChildren(el('div', { class: 'pv-empty muted' }, t('no_picture')));
    when.textContent = '';
    return;
  }
  // Drawn again only for a new picture or another language (the labels are translated).
  if (fig.dataset.shown === m.url + ' ' + lang) return;
  fig.dataset.shown = m.url + ' ' + lang;
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 1 1');
  svg.setAttribute('preserveAspectRatio', 'none');
  for (const o of m.objects) {
    const [x1, y1, x2, y2] = o.bbox;
    const r = document.createElementNS(SVG_NS, 'rect');
    for (const [k, v] of Object.entries({ x: x1, y: y1, width: x2 - x1, height: y2 - y1 })) r.setAttribute(k, v);
    r.setAttribute('vector-effect', 'non-scaling-stroke');
    const tip = document.createElementNS(SVG_NS, 'title');
    tip.textContent = `${classLabel(o.class)} ${Math.round(o.score * 100)}%`;
    r.appendChild(tip);
    svg.appendChild(r);
  }
  pic.replaceChildren(el('img', { src: m.url, alt: fig.querySelector('b').textContent, width: m.width, height: m.height }), svg);
  when.textContent = `${t('taken_at')} ${fmtTimeS(m.taken_at)} · ${t('objects_n', m.objects.length)}`;
}

async function askPicture(site, camera, fig) {
  const button = fig.querySelector('.pv-get');
  const error = fig.querySelector('.pv-error');
  button.disabled = true;
  button.textContent = t('getting_picture');
  error.textContent = '';
  try {
    drawPicture(fig, await api(`/api/cameras/${encodeURIComponent(site)}/${encodeURIComponent(camera)}/preview`, { method: 'POST', body: '{}' }));
  } catch (e) {
    error.textContent = e.message;
  } finally {
    button.disabled = false;
    button.textContent = t('get_picture');
  }
}

// Zone and line editor (admins): the camera's current picture with what the detector sees on
// it, the zones and lines drawn over it (drag a corner; click the picture to add a corner to
// the chosen zone; double-click a corner to remove it), and the rules. Saving stores the next
// version at the center and pushes it; the agent checks it as check-config does and says
// which version runs, or what is wrong, by key.
// The incident kinds come from the center (GET /api/kinds, read once at start): their names
// in both languages, and for those a rule raises, the keys it needs or may take.
const KINDS = [];
const NEEDS = {};
const RULE_KEYS = {};
function applyKinds(list) {
  for (const k of list) {
    L.vi['k_' + k.kind] = k.vi;
    L.en['k_' + k.kind] = k.en;
    if (!k.rule) continue;
    KINDS.push(k.kind);
    RULE_KEYS[k.kind] = k.rule;
    const need = (key) => k.rule.keys[key] === 'required';
    if (need('zone')) NEEDS[k.kind] = 'zone';
    else if (need('line')) NEEDS[k.kind] = 'line';
  }
}
const takes = (kind, key) => Boolean(RULE_KEYS[kind] && RULE_KEYS[kind].keys[key]);
const ed = { site: null, camera: null, base: 0, a: null, sel: null, timer: null, picture: null, drag: null };
const camPath = (site, cam) => `/api/cameras/${encodeURIComponent(site)}/${encodeURIComponent(cam)}`;
const round = (v) => Math.round(Math.min(1, Math.max(0, v)) * 1000) / 1000;
// Unset keys come back as null from what an agent runs: left out, they read the same.
const prune = (v) => (Array.isArray(v) ? v.map(prune)
  : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null).map(([k, x]) => [k, prune(x)])) : v);

async function openEditor(site, camera) {
  const cur = await api(camPath(site, camera) + '/analytics');
  Object.assign(ed, { site, camera, base: cur.version || 0, picture: null, drag: null });
  state.selected = null; // live incident updates must not replace the editor
  // Start from what the center stored, else from what the camera runs (its site file).
  const a = prune(structuredClone(cur.analytics || (cur.state && cur.state.analytics) || {}));
  for (const k of ['zones', 'lines', 'rules']) a[k] = a[k] || [];
  ed.a = a;
  ed.sel = a.zones.length ? { type: 'zones', i: 0 } : a.lines.length ? { type: 'lines', i: 0 } : null;
  const d = $('#detail');
  d.replaceChildren(
    el('button', { class: 'act', onclick: closeEditor }, '×'),
    el('h2', {}, t('edit_title') + ': ' + siteName(site) + ' / ' + cameraName(site, camera)),
    el('p', { id: 'ed-state', class: 'facts' }),
    el('div', { class: 'pv-pic', id: 'ed-pic' }, el('div', { class: 'pv-empty muted' }, t('getting_picture'))),
    el('p', { class: 'pv-error', id: 'ed-pic-error' }),
    el('p', { class: 'muted' }, t('edit_help')),
    el('div', { class: 'bar', id: 'ed-shapes' }),
    el('div', { id: 'ed-shape' }),
    el('h3', {}, t('rules')),
    el('div', { id: 'ed-rules' }),
    el('p', {}, el('button', { class: 'act', onclick: () => { ed.a.rules.push(newRule()); renderEditor(); } }, '+ ' + t('rule'))),
    el('details', {}, el('summary', {}, t('advanced_json')),
      el('textarea', { id: 'ed-json', rows: 12, spellcheck: 'false' }),
      el('p', {}, el('button', { class: 'act', onclick: applyJson }, t('apply_json')), ' ', el('span', { id: 'ed-json-error', class: 'pv-error' }))),
    el('p', { class: 'bar' },
      el('button', { class: 'act primary', id: 'ed-save', onclick: saveAnalytics }, t('save_push')),
      el('button', { class: 'act', onclick: refreshEditorPicture }, t('get_picture'))),
    el('div', { id: 'ed-result' }),
  );
  d.classList.add('open');
  showEditorState(cur);
  renderEditor();
  refreshEditorPicture();
  clearInterval(ed.timer);
  // Live: a new picture with its detections every few seconds while the editor is open.
  ed.timer = setInterval(() => {
    if (!$('#ed-pic')) return clearInterval(ed.timer);
    if (!ed.drag) refreshEditorPicture();
  }, 4000);
}

function closeEditor() {
  clearInterval(ed.timer);
  ed.site = null;
  $('#detail').classList.remove('open');
}

function newRule() {
  const zone = ed.a.zones[0];
  // The first kind of the catalogue that watches a zone, or else one that watches the picture.
  const name = 'rule ' + (ed.a.rules.length + 1);
  return zone ? { name, kind: KINDS.find((k) => NEEDS[k] === 'zone'), zone: zone.name, classes: ['person'] }
    : { name, kind: KINDS.find((k) => !RULE_KEYS[k].objects) };
}

async function refreshEditorPicture() {
  const [site, camera] = [ed.site, ed.camera];
  if (!site) return;
  try {
    const m = await api(camPath(site, camera) + '/preview', { method: 'POST', body: '{}' });
    if (ed.site !== site || ed.camera !== camera) return;
    ed.picture = m;
    $('#ed-pic-error').textContent = '';
    drawEditor();
    // The camera wall shows the same new picture.
    const tile = [...document.querySelectorAll('#pictures figure')].find((f) => f.dataset.camera === site + '/' + camera);
    if (tile) drawPicture(tile, m);
  } catch (e) {
    // Without a picture the shapes can still be drawn, on a blank of the usual shape.
    const msg = $('#ed-pic-error');
    if (msg) msg.textContent = e.message;
  }
}

function showEditorState(cur) {
  const s = cur.state;
  const box = $('#ed-state');
  const lines = [];
  if (!s) lines.push(el('div', { class: 'muted' }, t('ed_no_state')));
  else lines.push(el('div', {}, s.running_version ? t('ed_running', s.running_version) : t('ed_running_file')));
  if (cur.version) lines.push(el('div', { class: 'muted' }, t('ed_stored', cur.version) + ' (' + cur.changed_by + ', ' + fmtDateTime(cur.changed_at_ms) + ')'));
  if (cur.site_ahead && s) lines.push(el('div', { class: 'pv-error' }, t('ed_site_ahead', s.running_version)));
  if (s && s.refused) {
    lines.push(el('div', { class: 'pv-error' }, t('ed_refused', s.refused.version)));
    lines.push(el('ul', { class: 'pv-error', id: 'ed-problems' }, ...s.refused.problems.map((p) => el('li', {}, el('code', {}, p.key || '*'), ' ' + p.message))));
  }
  box.replaceChildren(...lines);
}

// The shapes list, the chosen shape's fields, the rules, the JSON: from `ed.a`.
function renderEditor() {
  const a = ed.a;
  const chip = (type, i, s) => el('button', {
    class: 'act' + (ed.sel && ed.sel.type === type && ed.sel.i === i ? ' primary' : ''),
    onclick: () => { ed.sel = { type, i }; renderEditor(); },
  }, (type === 'zones' ? '▱ ' : '╱ ') + s.name);
  $('#ed-shapes').replaceChildren(
    ...a.zones.map((z, i) => chip('zones', i, z)), ...a.lines.map((l, i) => chip('lines', i, l)),
    el('button', { class: 'act', id: 'ed-add-zone', onclick: () => addShape('zones') }, '+ ' + t('zone')),
    el('button', { class: 'act', id: 'ed-add-line', onclick: () => addShape('lines') }, '+ ' + t('line')));
  const s = ed.sel && a[ed.sel.type][ed.sel.i];
  $('#ed-shape').replaceChildren(...(s ? [el('div', { class: 'bar' },
    el('label', {}, t('name') + ' ', el('input', { id: 'ed-name', value: s.name, size: 14, onchange: (e) => renameShape(e.target.value.trim()) })),
    ed.sel.type === 'lines' ? el('label', {}, t('in_side') + ' ', selectOf(['left', 'right'], s.in_side || 'left', (v) => { s.in_side = v; renderEditor(); }, (v) => t('side_' + v))) : '',
    el('span', { class: 'muted' }, t('points_n', s.points.length)),
    el('button', { class: 'act', onclick: () => { s.points = []; renderEditor(); } }, t('clear_points')),
    el('button', { class: 'act', onclick: removeShape }, t('delete')))] : []));
  const places = (kind) => (NEEDS[kind] === 'zone' ? a.zones : NEEDS[kind] === 'line' ? a.lines : []).map((x) => x.name);
  $('#ed-rules').replaceChildren(...a.rules.map((r, i) => {
    const where = NEEDS[r.kind];
    return el('div', { class: 'card ed-rule' },
      el('div', { class: 'bar' },
        el('input', { value: r.name, size: 14, 'aria-label': t('name'), onchange: (e) => { r.name = e.target.value.trim(); renderEditor(); } }),
        selectOf(KINDS, r.kind, (v) => { r.kind = v; fixRule(r); renderEditor(); }, kindLabel),
        where ? selectOf(places(r.kind), r[where] || '', (v) => { r[where] = v; renderEditor(); }) : '',
        selectOf(['info', 'warning', 'critical'], r.severity || 'warning', (v) => { r.severity = v; renderEditor(); }, (v) => label('sev_', v))),
      el('div', { class: 'bar' },
        // Camera rules look at the picture, not at objects.
        !(RULE_KEYS[r.kind] && RULE_KEYS[r.kind].objects) ? ''
          : el('label', {}, t('classes') + ' ', el('input', { value: (r.classes || []).join(', '), size: 18, list: 'ed-classes', placeholder: 'person, car',
            onchange: (e) => { r.classes = e.target.value.split(',').map((x) => x.trim()).filter(Boolean); renderEditor(); } })),
        takes(r.kind, 'min_duration_sec')
          ? el('label', {}, t('min_duration') + ' ', el('input', { type: 'number', min: 0, step: 1, value: r.min_duration_sec ?? '', style: 'width:5em',
            onchange: (e) => { if (e.target.value === '') delete r.min_duration_sec; else r.min_duration_sec = Number(e.target.value); renderEditor(); } })) : '',
        takes(r.kind, 'min_count')
          ? el('label', {}, t('min_count') + ' ', el('input', { type: 'number', min: 1, step: 1, value: r.min_count ?? '', style: 'width:4em',
            onchange: (e) => { if (e.target.value === '') delete r.min_count; else r.min_count = Number(e.target.value); renderEditor(); } })) : '',
        el('button', { class: 'act', onclick: () => { a.rules.splice(i, 1); renderEditor(); } }, t('delete'))));
  }), el('datalist', { id: 'ed-classes' }, ...['person', 'bicycle', 'car', 'motorcycle', 'bus', 'truck'].map((c) => el('option', { value: c }))));
  const json = $('#ed-json');
  if (json && document.activeElement !== json) json.value = JSON.stringify(a, null, 2);
  drawEditor();
}

function selectOf(values, current, onchange, show = (v) => v) {
  const s = el('select', { onchange: (e) => onchange(e.target.value) }, ...values.map((v) => el('option', { value: v }, show(v))));
  if (current && !values.includes(current)) s.prepend(el('option', { value: current }, current));
  s.value = current;
  return s;
}

// A rule keeps only the place its kind uses.
function fixRule(r) {
  const where = NEEDS[r.kind];
  for (const k of ['zone', 'line']) if (k !== where) delete r[k];
  if (where && !r[where]) { const first = (where === 'zone' ? ed.a.zones : ed.a.lines)[0]; if (first) r[where] = first.name; }
}

function addShape(type) {
  const names = new Set(ed.a[type].map((s) => s.name));
  let n = ed.a[type].length + 1;
  while (names.has((type === 'zones' ? 'zone ' : 'line ') + n)) n += 1;
  const shape = { name: (type === 'zones' ? 'zone ' : 'line ') + n, points: [] };
  if (type === 'lines') shape.in_side = 'left';
  ed.a[type].push(shape);
  ed.sel = { type, i: ed.a[type].length - 1 };
  renderEditor();
}

function renameShape(name) {
  const s = ed.a[ed.sel.type][ed.sel.i];
  if (!name || name === s.name) return;
  const key = ed.sel.type === 'zones' ? 'zone' : 'line';
  for (const r of ed.a.rules) if (r[key] === s.name) r[key] = name;
  s.name = name;
  renderEditor();
}

function removeShape() {
  const s = ed.a[ed.sel.type][ed.sel.i];
  const key = ed.sel.type === 'zones' ? 'zone' : 'line';
  ed.a.rules = ed.a.rules.filter((r) => r[key] !== s.name);
  ed.a[ed.sel.type].splice(ed.sel.i, 1);
  ed.sel = null;
  renderEditor();
}

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

// The picture, the detections (green), zones (yellow) and lines (blue) with their corners.
function drawEditor() {
  const pic = $('#ed-pic');
  if (!pic) return;
  const m = ed.picture;
  let img = pic.querySelector('img');
  if (m && (!img || img.dataset.url !== m.url)) {
    img = el('img', { src: m.url, alt: '', width: m.width, height: m.height });
    img.dataset.url = m.url;
  }
  // Without a picture yet the shapes are drawn on a 16:9 placeholder.
  const base = img || el('div', { class: 'ed-blank' });
  const svg = svgEl('svg', { viewBox: '0 0 1000 1000', preserveAspectRatio: 'none', id: 'ed-svg' });
  for (const o of (m ? m.objects : [])) {
    const [x1, y1, x2, y2] = o.bbox;
    svg.appendChild(svgEl('rect', { x: x1 * 1000, y: y1 * 1000, width: (x2 - x1) * 1000, height: (y2 - y1) * 1000, class: 'det' }));
  }
  for (const type of ['zones', 'lines']) {
    ed.a[type].forEach((s, i) => {
      const chosen = ed.sel && ed.sel.type === type && ed.sel.i === i;
      const pts = s.points.map(([x, y]) => `${x * 1000},${y * 1000}`).join(' ');
      // Chosen with the buttons above, not on the picture: a click there adds a corner to the
      // chosen shape, also inside another zone.
      svg.appendChild(svgEl(type === 'zones' ? 'polygon' : 'polyline', { points: pts, class: (type === 'zones' ? 'zone' : 'line') + (chosen ? ' chosen' : '') }));
      const label = svgEl('text', { x: (s.points[0] || [0, 0])[0] * 1000 + 8, y: (s.points[0] || [0, 0])[1] * 1000 - 8, class: 'shape-name' });
      label.textContent = s.name;
      if (s.points.length) svg.appendChild(label);
      // A line's "in" side: an arrow from its middle (left or right of first → second, as
      // seen on the picture).
      if (type === 'lines' && s.points.length === 2) {
        const [[ax, ay], [bx, by]] = s.points.map(([x, y]) => [x * 1000, y * 1000]);
        const len = Math.hypot(bx - ax, by - ay) || 1;
        const sign = (s.in_side || 'left') === 'left' ? 1 : -1;
        const [nx, ny] = [sign * (by - ay) / len, sign * -(bx - ax) / len];
        const [mx, my] = [(ax + bx) / 2, (ay + by) / 2];
        svg.appendChild(svgEl('line', { x1: mx, y1: my, x2: mx + nx * 70, y2: my + ny * 70, class: 'in-arrow' }));
        const tag = svgEl('text', { x: mx + nx * 90 - 20, y: my + ny * 90 + 10, class: 'shape-name' });
        tag.textContent = t('in_mark');
        svg.appendChild(tag);
      }
      if (!chosen) return;
      s.points.forEach(([x, y], k) => {
        const c = svgEl('circle', { cx: x * 1000, cy: y * 1000, r: 14, class: 'corner', 'data-k': k });
        c.addEventListener('pointerdown', (e) => { e.stopPropagation(); e.preventDefault(); ed.drag = { k }; svg.setPointerCapture(e.pointerId); });
        c.addEventListener('dblclick', (e) => { e.stopPropagation(); s.points.splice(k, 1); renderEditor(); });
        svg.appendChild(c);
      });
    });
  }
  const at = (e) => { const r = svg.getBoundingClientRect(); return [round((e.clientX - r.left) / r.width), round((e.clientY - r.top) / r.height)]; };
  svg.addEventListener('pointermove', (e) => {
    if (!ed.drag || !ed.sel) return;
    ed.a[ed.sel.type][ed.sel.i].points[ed.drag.k] = at(e);
    drawEditor();
  });
  svg.addEventListener('pointerup', () => { if (ed.drag) { ed.drag = null; renderEditor(); } });
  svg.addEventListener('pointerdown', (e) => {
    if (!ed.sel) return;
    const s = ed.a[ed.sel.type][ed.sel.i];
    if (ed.sel.type === 'lines' && s.points.length >= 2) return;
    s.points.push(at(e));
    renderEditor();
  });
  // Keep the svg that holds the pointer while dragging: swap only its children.
  const old = pic.querySelector('svg');
  if (ed.drag && old) { old.replaceChildren(...svg.childNodes); return; }
  pic.replaceChildren(base, svg);
}

function applyJson() {
  const err = $('#ed-json-error');
  try {
    const a = JSON.parse($('#ed-json').value);
    if (!a || typeof a !== 'object' || Array.isArray(a)) throw new Error(t('json_object'));
    for (const k of ['zones', 'lines', 'rules']) a[k] = a[k] || [];
    ed.a = a;
    ed.sel = null;
    err.textContent = '';
    renderEditor();
  } catch (e) { err.textContent = e.message; }
}

async function saveAnalytics() {
  const out = $('#ed-result');
  const button = $('#ed-save');
  button.disabled = true;
  out.replaceChildren(el('p', { class: 'muted' }, t('pushing')));
  try {
    const r = await api(camPath(ed.site, ed.camera) + '/analytics', { method: 'PUT', body: JSON.stringify({ analytics: ed.a, base_version: ed.base }) });
    ed.base = r.version;
    // The agent answers within a second or two when it is online; otherwise it applies the
    // version when it comes back (retained).
    const until = Date.now() + 15000;
    let cur = null;
    while (Date.now() < until) {
      cur = await api(camPath(ed.site, ed.camera) + '/analytics');
      const s = cur.state;
      if (s && (s.running_version === r.version || (s.refused && s.refused.version === r.version))) break;
      await new Promise((ok) => setTimeout(ok, 700));
    }
    showEditorState(cur);
    const s = cur && cur.state;
    out.replaceChildren(el('p', { class: s && s.running_version === r.version ? 'ok' : 'pv-error' },
      s && s.running_version === r.version ? t('ed_applied', r.version)
        : s && s.refused && s.refused.version === r.version ? t('ed_refused_see', r.version) : t('ed_waiting', r.version)));
    if (s && s.refused && s.refused.version === r.version) $('#ed-state').scrollIntoView({ block: 'start', behavior: 'smooth' });
  } catch (e) {
    const list = (e.problems || []).map((p) => el('li', {}, el('code', {}, p.key || '*'), ' ' + p.message));
    out.replaceChildren(el('p', { class: 'pv-error' }, list.length ? t('ed_invalid') : e.message),
      ...(list.length ? [el('ul', { class: 'pv-error', id: 'ed-invalid' }, ...list)] : []));
  } finally { button.disabled = false; }
}

async function loadSilences() {
  const r = await api('/api/silences');
  const can = state.me && state.me.role !== 'viewer';
  $('#silences tbody').replaceChildren(...r.silences.map((s) => el('tr', {},
    named(names.sites.get(s.site), s.site), el('td', {}, s.camera ? cameraName(s.site, s.camera) : '*'), el('td', {}, fmtDateTime(s.ends_at_ms)),
    el('td', {}, s.reason + ' (' + s.created_by + ')'),
    el('td', {}, can ? el('button', { class: 'act', onclick: async () => {
      await api(`/api/silences/${s.id}/end`, { method: 'POST', body: '{}' }).catch((e) => alert(e.message));
      loadSilences();
    } }, t('end_silence')) : ''))));
  labelCells($('#silences'));
}

async function addSilence(ev) {
  ev.preventDefault();
  const body = {
    site: $('#s-site').value.trim(),
    ends_at_ms: Date.now() + Number($('#s-hours').value) * 3600000,
    reason: $('#s-reason').value.trim(),
  };
  if ($('#s-camera').value.trim()) body.camera = $('#s-camera').value.trim();
  try {
    await api('/api/silences', { method: 'POST', body: JSON.stringify(body) });
    $('#s-reason').value = '';
    loadSilences();
  } catch (e) { alert(e.message); }
}

// A short tone for what needs eyes now: a new critical incident, or one gone overdue.
// Browsers allow sound only after the page has been clicked once; that is fine on a shift.
let audio = null;
function alertTone() {
  try {
    audio = audio || new AudioContext();
    const o = audio.createOscillator();
    const g = audio.createGain();
    o.frequency.value = 880;
    g.gain.setValueAtTime(0.15, audio.currentTime);
    g.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.4);
    o.connect(g).connect(audio.destination);
    o.start();
    o.stop(audio.currentTime + 0.4);
  } catch (e) { /* no audio: the row still flashes */ }
}

function updateTitle() {
  const open = [...state.incidents.values()].filter((i) => i.state === 'open' && !i.silenced).length;
  document.title = (open ? `(${open}) ` : '') + 'ioc-edge';
}

function fillSelect(sel, values) {
  const have = new Set([...sel.options].map((o) => o.value));
  for (const v of [...values].sort()) if (!have.has(v)) sel.append(el('option', { value: v }, v));
}

const PALETTE = ['#2f6fb3', '#c0392b', '#d68910', '#1e8449', '#8e44ad', '#16a085', '#7f8c8d', '#e67e22', '#2c3e50', '#b03a2e'];

// Stacked vertical bars: groups (x) × series (colours).
function stacked(groups, series, value) {
  const W = 560, H = 220, pad = 30;
  const totals = groups.map((g) => series.reduce((s, k) => s + (value(g, k) || 0), 0));
  const max = Math.max(1, ...totals);
  const bw = Math.max(4, (W - pad) / Math.max(1, groups.length) - 4);
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H + 60}`);
  svg.setAttribute('width', '100%');
  const add = (tag, attrs, text) => {
    const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  groups.forEach((g, gi) => {
    let y = H;
    const x = pad + gi * (bw + 4);
    series.forEach((k, si) => {
      const v = value(g, k) || 0;
      if (!v) return;
      const h = (v / max) * (H - 20);
      y -= h;
      add('rect', { x, y, width: bw, height: h, fill: PALETTE[si % PALETTE.length] }).append(
        Object.assign(document.createElementNS('http://www.w3.org/2000/svg', 'title'), { textContent: `${g} ${kindLabel(k)}: ${v}` }));
    });
    if (totals[gi]) add('text', { x: x + bw / 2, y: y - 3, 'font-size': 10, 'text-anchor': 'middle' }, totals[gi]);
    add('text', { x: x + bw / 2, y: H + 12, 'font-size': 9, 'text-anchor': 'middle' }, String(g).slice(5) || g);
  });
  series.forEach((k, si) => {
    add('rect', { x: pad + (si % 3) * 180, y: H + 22 + Math.floor(si / 3) * 14, width: 10, height: 10, fill: PALETTE[si % PALETTE.length] });
    add('text', { x: pad + 14 + (si % 3) * 180, y: H + 31 + Math.floor(si / 3) * 14, 'font-size': 10 }, kindLabel(k));
  });
  return svg;
}

async function loadCharts() {
  const days = $('#f-days').value;
  const r = await api('/api/stats?days=' + days);
  const s = r.stats;
  const dayList = [];
  // The district's days (UTC shifted by its offset, read back as UTC), wherever the browser is.
  const now = Date.now() + state.me.utc_offset_minutes * 60000;
  for (let i = Number(days) - 1; i >= 0; i--) {
    dayList.push(new Date(now - i * 86400000).toISOString().slice(0, 10));
  }
  const kinds = [...new Set(s.per_day_kind.map((x) => x[1]))].sort();
  const byDay = new Map(s.per_day_kind.map(([d, k, n]) => [d + '|' + k, n]));
  $('#chart-day').replaceChildren(stacked(dayList, kinds, (d, k) => byDay.get(d + '|' + k)));
  const hours = [...Array(24).keys()];
  const hk = [...new Set(s.per_hour_kind.map((x) => x[1]))].sort();
  const byHour = new Map(s.per_hour_kind.map(([h, k, n]) => [h + '|' + k, n]));
  $('#chart-hour').replaceChildren(stacked(hours, hk, (h, k) => byHour.get(h + '|' + k)));
  const lines = [...new Set(s.counts.map((c) => `${c[1]}/${c[2]}/${c[3]} ${c[5]}`))].sort();
  const byLine = new Map();
  for (const [d, site, cam, line, , dir, n] of s.counts) {
    const key = d + '|' + `${site}/${cam}/${line} ${dir}`;
    byLine.set(key, (byLine.get(key) || 0) + n);
  }
  $('#chart-counts').replaceChildren(lines.length ? stacked(dayList, lines, (d, l) => byLine.get(d + '|' + l)) : el('p', { class: 'muted' }, '—'));
}

function setupReports() {
  const input = $('#r-date');
  // Today (so far) by default: on a first day, yesterday's report would be empty. The
  // district's day: UTC shifted by its offset, read back as UTC (the browser's zone plays no part).
  const today = new Date(Date.now() + state.me.utc_offset_minutes * 60000);
  if (!input.value) input.value = today.toISOString().slice(0, 10);
  const update = () => {
    $('#r-html').href = '/api/reports/daily?format=html&date=' + input.value;
    $('#r-csv').href = '/api/reports/daily?format=csv&date=' + input.value;
  };
  input.onchange = update;
  update();
}

function show(view) {
  state.view = view;
  for (const b of document.querySelectorAll('header nav button')) b.classList.toggle('on', b.dataset.view === view);
  for (const v of ['incidents', 'health', 'charts', 'reports']) $('#view-' + v).classList.toggle('hidden', v !== view);
  if (view === 'health') loadHealth();
  if (view === 'charts') loadCharts();
  if (view === 'reports') setupReports();
}

function connectLive() {
  const es = new EventSource('/api/stream');
  let connectedBefore = false;
  es.addEventListener('hello', () => {
    $('#live').classList.add('on');
    $('#live').title = t('live_on');
    // Back after a cut: what changed meanwhile never came over the stream.
    if (connectedBefore) {
      loadIncidents(false);
      if (state.view === 'health') loadHealth();
    }
    connectedBefore = true;
  });
  es.addEventListener('incident', (ev) => {
    const c = JSON.parse(ev.data);
    upsert(c.incident, c.change === 'opened' || c.change === 'escalated');
    updateTitle();
    if (!c.incident.silenced && (c.change === 'escalated' || (c.change === 'opened' && c.incident.severity === 'critical'))) alertTone();
    fillSelect($('#f-kind'), [c.incident.kind]);
  });
  es.addEventListener('health', () => { if (state.view === 'health') loadHealth(); else refreshNames(); });
  es.addEventListener('resync', () => loadIncidents(false));
  es.onerror = () => { $('#live').classList.remove('on'); $('#live').title = t('live_off'); };
}

async function main() {
  translate();
  state.me = await api('/api/me');
  applyKinds(await api('/api/kinds'));
  $('#whoami').textContent = `${state.me.user} (${state.me.role})`;
  $('#lang').onchange = () => {
    lang = $('#lang').value;
    localStorage.setItem('ioc.lang', lang);
    translate();
    renderList();
    if (state.selected) openDetail(state.selected);
    if (state.view === 'health') loadHealth().catch(() => {});
  };
  $('#logout').onclick = async () => { await api('/api/logout', { method: 'POST', body: '{}' }).catch(() => {}); location.href = '/login'; };
  for (const b of document.querySelectorAll('header nav button')) b.onclick = () => show(b.dataset.view);
  for (const id of ['#f-state', '#f-kind', '#f-site']) $(id).onchange = () => loadIncidents(false);
  $('#f-days').onchange = loadCharts;
  $('#more').onclick = () => loadIncidents(true);
  $('#silence-form').onsubmit = addSilence;
  if (state.me.role === 'viewer') for (const e of document.querySelectorAll('.operator-only')) e.classList.add('hidden');
  fillSelect($('#f-kind'), Object.keys(L.en).filter((k) => k.startsWith('k_')).map((k) => k.slice(2)));
  connectLive();
  await loadIncidents(false);
  loadHealth().catch(() => {});
  setInterval(() => { if (state.view === 'incidents') renderList(); }, 30000);
  // States age even when nothing arrives: refresh them, and the broker banner and the names
  // on every view.
  setInterval(() => {
    if (state.view === 'health') loadHealth().catch(() => {});
    else refreshNames();
  }, 15000);
}

main().catch((e) => console.error(e));
