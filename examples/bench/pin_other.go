//go:build unix && !linux

package main

import "errors"

var errNoAffinity = errors.New("CPU affinity is not supported here")

func allowedCPUs() ([]int, error) { return nil, errNoAffinity }

func setAffinity(int, []int) error { return errNoAffinity }
