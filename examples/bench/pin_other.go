//go:build unix && !linux

package main

import "errors"

func setAffinity(int, []int) error { return errors.New("CPU affinity is not supported here") }
