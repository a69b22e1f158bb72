package parse

import (
	"strings"
	"testing"
)

func TestParseBulk(t *testing.T) {
	items, err := ParseBulk(readTestdata(t, "json.json"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 4 {
		t.Fatalf("%d items, want 4", len(items))
	}
	titles := []string{"Lorem ipsum", "Li Europan lingues (en)", "Qui est Albert ?", "Qui est Erasmus ?"}
	for i, it := range items {
		if it.Title != titles[i] {
			t.Errorf("item %d title %q, want %q", i, it.Title, titles[i])
		}
		if it.Metadata["source"] != "Lorem ipsum dolor sit amet" {
			t.Errorf("item %d source %v", i, it.Metadata["source"])
		}
	}
	if !strings.HasPrefix(items[0].Text, "Lorem ipsum dolor sit amet, consectetur adipiscing elit") {
		t.Errorf("text %q", items[0].Text[:40])
	}
	if v := items[0].Metadata["metadata_test_type_string"]; v != "test" {
		t.Errorf("string metadata %#v", v)
	}
	if v := items[1].Metadata["metadata_test_type_bool"]; v != true {
		t.Errorf("bool metadata %#v", v)
	}
	if v := items[2].Metadata["metadata_test_type_int"]; v != int64(10) {
		t.Errorf("int metadata %#v (%T)", v, v)
	}
	if v := items[3].Metadata["metadata_test_type_float"]; v != 101.2 {
		t.Errorf("float metadata %#v (%T)", v, v)
	}
}

func TestParseBulkErrors(t *testing.T) {
	_, err := ParseBulk(readTestdata(t, "json_wrong_format.json"), Limits{})
	mustError(t, err, "must be a list of documents", `"text"`, "but it is an object")

	cases := []struct {
		in   string
		want []string
	}{
		{``, []string{"empty"}},
		{`[]`, []string{"empty list"}},
		{`"text"`, []string{"but it is a string"}},
		{`[{"text": "a"}, {"title": "no text"}, {"text": 3}, {"text": "  "}, 7, {"text": "ok", "metadata": [1]}, {"text": "ok", "title": {}}]`,
			[]string{`item 2: "text" is required`, `item 3: "text" must be a string, not a number`, `item 4: "text" is empty`,
				"item 5: must be an object", `item 6: "metadata" must be an object, not a list`, `item 7: "title" must be a string`}},
		{"[\n  {\"text\": \"a\",}\n]", []string{"not valid JSON", "line 2"}},
		{`[{"text": "a"}`, []string{"not valid JSON", "ends too early"}},
		{"[{\"text\": \"caf\xe9\"}]", []string{"not valid UTF-8"}},
	}
	for _, c := range cases {
		_, err := ParseBulk([]byte(c.in), Limits{})
		mustError(t, err, c.want...)
	}
	_, err = ParseBulk([]byte(`[{"text":"a"},{"text":"b"},{"text":"c"}]`), Limits{MaxPages: 2})
	mustError(t, err, "3 documents", "limit of 2")

	items, err := ParseBulk([]byte("\xEF\xBB\xBF[{\"text\": \"a\\r\\nb\\u0000\", \"title\": null, \"metadata\": {\"n\": 1e400, \"big\": 12345678901234567890, \"l\": [1, 2.5, {\"x\": 3}], \"u\": \"x\", \"extra\": null}, \"ignored\": 1}]"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	md := items[0].Metadata
	if items[0].Text != "a\nb" || items[0].Title != "" {
		t.Errorf("item %+v", items[0])
	}
	if md["n"] != "1e400" || md["big"] != 1.2345678901234567e19 {
		t.Errorf("numbers %#v %#v", md["n"], md["big"])
	}
	l := md["l"].([]any)
	if l[0] != int64(1) || l[1] != 2.5 || l[2].(map[string]any)["x"] != int64(3) {
		t.Errorf("list %#v", l)
	}
}
