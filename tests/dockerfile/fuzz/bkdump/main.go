// Command bkdump prints what BuildKit's Dockerfile parser makes of each input, for
// tests/dockerfile/fuzz/differential.py. Build it inside a BuildKit checkout (see README.md).

package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

type heredoc struct {
	Name    string `json:"name"`
	FD      uint   `json:"fd"`
	Expand  bool   `json:"expand"`
	Chomp   bool   `json:"chomp"`
	Content string `json:"content"`
}

type child struct {
	Start    int       `json:"start"`
	End      int       `json:"end"`
	Original string    `json:"original"`
	Heredocs []heredoc `json:"heredocs"`
}

type out struct {
	OK       bool    `json:"ok"`
	Err      string  `json:"err"`
	Dump     string  `json:"dump"`
	Escape   string  `json:"escape"`
	Warnings int     `json:"warnings"`
	Children []child `json:"children"`
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func main() {
	// stdin: one base64 input per line; stdout: one JSON result per line
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 64<<20), 64<<20)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	enc := json.NewEncoder(w)
	for sc.Scan() {
		data, err := base64.StdEncoding.DecodeString(sc.Text())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		var o out
		res, err := parser.Parse(bytes.NewReader(data))
		if err != nil {
			o.Err = err.Error()
		} else {
			o.OK = true
			o.Dump = b64(res.AST.Dump() + "\n")
			o.Escape = string(res.EscapeToken)
			o.Warnings = len(res.Warnings)
			for _, c := range res.AST.Children {
				ch := child{Start: c.StartLine, End: c.EndLine, Original: b64(c.Original)}
				for _, h := range c.Heredocs {
					ch.Heredocs = append(ch.Heredocs, heredoc{b64(h.Name), h.FileDescriptor, h.Expand, h.Chomp, b64(h.Content)})
				}
				o.Children = append(o.Children, ch)
			}
		}
		enc.Encode(o)
	}
}
