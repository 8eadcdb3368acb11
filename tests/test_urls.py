from django.urls import reverse


def test_a_mentions_action_urls_extend_its_own():
    # templates/responses/queue.html builds the claim URL from the mention's, once per row.
    mention_url = reverse("responses:mention", args=[42])
    assert reverse("responses:claim", args=[42]) == mention_url + "claim/"
