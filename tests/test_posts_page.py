from tests.conftest import csrf_token


def test_write_a_post_from_the_page(client, auth):
    auth.register("alice")
    auth.login("alice")
    token = csrf_token(client.get("/").get_data(as_text=True))
    response = client.post("/posts", data={"csrf_token": token, "body": "Hello <b>world</b>"})
    assert response.status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert "Hello &lt;b&gt;world&lt;/b&gt;" in page
    assert page.index("Hello &lt;b&gt;") > page.index('id="posts-heading"')
    assert "<title>Tasks</title>" in page

    client.post("/posts", data={"csrf_token": token, "body": "   "})
    assert "Your post was not saved: body is required." in client.get("/").get_data(as_text=True)
    assert client.post("/posts", data={"body": "no token"}).status_code == 400
