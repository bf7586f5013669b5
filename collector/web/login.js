// The login form (a file, not an inline script: the Content-Security-Policy allows only 'self').
document.getElementById('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const err = document.getElementById('error');
  err.textContent = '';
  const body = JSON.stringify({
    username: document.getElementById('username').value,
    password: document.getElementById('password').value,
  });
  try {
    const r = await fetch('/api/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
    if (r.ok) { location.href = '/'; return; }
    const wait = r.headers.get('Retry-After');
    err.textContent = r.status === 401 ? 'Sai tên hoặc mật khẩu / Wrong user name or password'
      : r.status === 429 ? `Thử sai quá nhiều lần, hãy đợi ${wait} giây / Too many failed attempts: wait ${wait} s`
      : r.status === 503 ? 'Máy chủ đang bận, hãy thử lại / The server is busy: try again'
      : 'Lỗi / Error ' + r.status;
  } catch (e) {
    err.textContent = 'Không kết nối được / Cannot reach the server';
  }
});
