"""The console on a phone-width screen (390×844): no page scrolls sideways as a whole (a wide table
may scroll inside its own card), and every navigation link is on screen, uncovered, and works."""

from conftest import fill, wait

from selenium.webdriver.common.by import By

# What sticks out of the page sideways. The page itself must not be wider than the window; an
# element or a run of text past the window's edge is named unless a box around it scrolls it
# (overflow-x auto or scroll), as the cards do for wide tables.
OVERFLOW = """
const width = document.documentElement.clientWidth;
function scrolledInside(node) {
  for (let box = node.parentElement; box && box !== document.body; box = box.parentElement) {
    const overflow = getComputedStyle(box).overflowX;
    if (overflow === 'auto' || overflow === 'scroll') return true;
  }
  return false;
}
function describe(element) {
  return element.tagName.toLowerCase() + (element.id ? '#' + element.id : '') +
    (typeof element.className === 'string' && element.className ? '.' + element.className.trim().split(/\\s+/).join('.') : '');
}
const outside = [];
function check(node, rect, name) {
  if (rect.width > 0 && (rect.right > width + 0.5 || rect.left < -0.5) && !scrolledInside(node))
    outside.push(name + ' ' + Math.round(rect.left) + '…' + Math.round(rect.right));
}
for (const element of document.body.querySelectorAll('*')) check(element, element.getBoundingClientRect(), describe(element));
// Text wider than its box (a long word) overflows without widening the box: measure the text itself.
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let text = walker.nextNode(); text; text = walker.nextNode()) {
  if (!text.textContent.trim()) continue;
  const range = document.createRange();
  range.selectNodeContents(text);
  check(text, range.getBoundingClientRect(), 'text "' + text.textContent.trim().slice(0, 40) + '" in ' + describe(text.parentElement));
}
return {scrollWidth: document.documentElement.scrollWidth, clientWidth: width, innerWidth: window.innerWidth,
        outside: outside.slice(0, 8)};
"""

# Whether the link is on screen and is what a tap at its centre reaches.
REACHABLE = """
const link = arguments[0], r = link.getBoundingClientRect();
if (r.width === 0 || r.left < 0 || r.right > document.documentElement.clientWidth || r.top < 0 || r.bottom > window.innerHeight) return 'off screen';
const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
return hit && (hit === link || link.contains(hit)) ? 'ok' : 'covered by ' + (hit ? hit.outerHTML.slice(0, 80) : 'nothing');
"""


def assert_fits(driver, page):
    figures = driver.execute_script(OVERFLOW)
    assert figures["clientWidth"] == 390, f"{page}: the viewport is not phone-width: {figures}"
    # A phone zooms out to show a page wider than the screen, so innerWidth grows past 390 then.
    assert figures["outside"] == [] and figures["scrollWidth"] <= figures["clientWidth"] and figures["innerWidth"] <= 390, \
        f"{page} scrolls sideways on a phone: {figures}"


def nav_links(driver):
    return driver.find_elements(By.CSS_SELECTOR, "header nav a")


def test_every_page_fits_a_phone_and_its_nav_works(server, phone):
    pages = fill(server)
    titles = {path: title for _, path, title, _ in pages}
    phone.get(server.url + "/ui/")
    assert [link.text for link in nav_links(phone)] == ["Overview", "Queues", "Pools", "Tasks", "Workers", "Schedules"]
    # Every nav page, reached by tapping its link on the page before.
    for index in range(len(nav_links(phone))):
        link = nav_links(phone)[index]
        path = link.get_attribute("pathname")
        for other in nav_links(phone):
            assert other.is_displayed() and phone.execute_script(REACHABLE, other) == "ok", \
                f"{phone.current_url}: nav link {other.text}: {phone.execute_script(REACHABLE, other)}"
        link.click()
        wait(phone).until(lambda d: d.find_element(By.TAG_NAME, "h1").text == titles[path])
        assert_fits(phone, path)
    task = next(path for name, path, _, _ in pages if name == "task")
    phone.get(server.url + task)
    assert_fits(phone, task)


def test_sign_in_fits_a_phone(make_server, phone):
    server = make_server(token="phone-s3cret")
    phone.get(server.url + "/ui/")
    assert phone.current_url.endswith("/ui/sign-in")
    assert_fits(phone, "/ui/sign-in")
    phone.find_element(By.ID, "token").send_keys("phone-s3cret")
    phone.find_element(By.ID, "sign-in").click()
    wait(phone).until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "Overview")
    assert_fits(phone, "/ui/ signed in")
